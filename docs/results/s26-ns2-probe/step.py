# Per global layer and decode step: exact attention of each query head over the compressed prompt tokens,
# the mass in selected + outlier chunks, the top chunks by exact mass with their status and landmark rank.
import numpy as np, glob, sys
C = 8
d = sys.argv[1]; steps = int(sys.argv[2]); n_out = int(sys.argv[3])
def softmax(x):
    m = x.max(-1, keepdims=True); e = np.exp(x - m); return e / e.sum(-1, keepdims=True)
for L in (5, 11, 17):
    meta = open(f"{d}/meta_L{L}.txt").read().split()
    N, nh, nkv, hd, scale = int(meta[0]), int(meta[1]), int(meta[2]), int(meta[3]), float(meta[4])
    k = np.fromfile(f"{d}/k_L{L}_h0_b0.f32", dtype=np.float32).reshape(-1, hd)
    nc = k.shape[0] // C
    kc = k[:nc * C].reshape(nc, C, hd); lm = kc.mean(1)
    cos = (kc * lm[:, None, :]).sum(-1) / (np.linalg.norm(kc, axis=-1) * np.linalg.norm(lm, axis=-1)[:, None] + 1e-30)
    out = set(np.argsort(cos.min(1), kind='stable')[:n_out].tolist())
    print(f"layer {L}: {nc} chunks, outliers {sorted(out)[:12]}...")
    for s in range(steps):
        fs = glob.glob(f"{d}/q_L{L}_s{s}_p*.f32")
        if not fs: break
        q = np.fromfile(fs[0], dtype=np.float32).reshape(nh, hd)
        sel = set(np.fromfile(f"{d}/sel_L{L}_h0_s{s}.i64", dtype=np.int64).tolist())
        p = softmax(q @ k[:nc * C].T * scale); cm = p.reshape(nh, nc, C).sum(-1)
        keep = np.array([c in sel or c in out for c in range(nc)])
        ls = softmax(q @ lm.T * scale).max(0); rank = np.empty(nc, int); rank[np.argsort(-ls, kind='stable')] = np.arange(nc)
        cap = cm[:, keep].sum(1)
        line = []
        for h in range(nh):
            top = np.argsort(-cm[h])[:4]
            line.append(" ".join(f"{c}:{cm[h, c]:.2f}{'O' if c in out else ('S' if c in sel else 'x')}r{rank[c]}" for c in top))
        print(f"  s{s} {fs[0].split('_p')[-1][:-4]} cap " + " ".join(f"{x:.2f}" for x in cap) + " | " + " | ".join(line))
