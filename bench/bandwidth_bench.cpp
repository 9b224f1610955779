// Memory-bandwidth roofline: a streaming read of a 1 GiB buffer with AVX2 loads, on 1 and 2 threads (OpenMP, each
// thread reads one contiguous half). GB/s is decimal (1e9 bytes/s); bytes_per_second is Google Benchmark's binary unit.
//   build/shadowkv_bench --benchmark_filter=StreamRead --benchmark_repetitions=5
// On a shared machine, prefix `chrt -f 10` (root): otherwise the second thread waits for a core and the 2-thread
// figure measures the other jobs.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace shadowkv {
namespace {

constexpr size_t kBytes = size_t{1} << 30;

// The buffer is allocated and first touched once, by the threads that will read it.
const uint8_t* buffer() {
  static const uint8_t* buf = [] {
    void* p = std::aligned_alloc(2 << 20, kBytes);
    if (!p) std::abort();
    madvise(p, kBytes, MADV_HUGEPAGE);  // fewer TLB misses: what a roofline should see
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < (int64_t)(kBytes >> 12); ++i) std::memset((uint8_t*)p + (i << 12), (int)(i & 0x7f), 4096);
    return (const uint8_t*)p;
  }();
  return buf;
}

// Sums [p, p + n) as 64-bit lanes with four independent accumulators (128 bytes per iteration); n % 128 == 0.
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i*)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i*)(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i*)(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i*)(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256((__m256i*)lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

void BM_StreamReadAvx2(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx2")) {
    state.SkipWithError("AVX2 not supported on this CPU");
    return;
  }
  const int threads = (int)state.range(0);
  const uint8_t* buf = buffer();
  for (auto _ : state) {
    uint64_t sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t part = kBytes / nt / 128 * 128;
      sum += read_avx2(buf + t * part, t == nt - 1 ? kBytes - t * part : part);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * (int64_t)kBytes);
  state.counters["GB/s"] = benchmark::Counter((double)state.iterations() * kBytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
}
BENCHMARK(BM_StreamReadAvx2)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shadowkv
