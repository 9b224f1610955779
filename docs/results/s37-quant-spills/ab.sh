#!/bin/bash
# usage: ab.sh FILTER ROUNDS  -- alternates old/new, prints min and median per benchmark
F=$1; R=${2:-4}
for i in $(seq $R); do
 for b in old new; do
  bin=/tmp/s37/bench_old; [ $b = new ] && bin=/work/main/build/shadowkv_bench
  chrt -f 10 $bin --benchmark_filter="$F" --benchmark_min_time=0.3 --benchmark_format=csv 2>/dev/null | grep '^"' | awk -F, -v B=$b '{print B, $1, $4}'
 done
done | python3 -c "
import sys,collections,statistics
d=collections.defaultdict(list)
for l in sys.stdin:
  b,n,t=l.split(); d[(n,b)].append(float(t))
for n in sorted(set(k[0] for k in d)):
  o=d[(n,'old')];w=d[(n,'new')]
  print(f'{n:70s} old min {min(o):9.1f} med {statistics.median(o):9.1f} | new min {min(w):9.1f} med {statistics.median(w):9.1f} | med ratio {statistics.median(o)/statistics.median(w):.3f}')
"
