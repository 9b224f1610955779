# Rows the unselected-chunk estimate reads, and its relative output error, when negligible chunks are left out:
#   thresh.py DIR max    chunks below t of their head's best chunk's weight in every head (t = 1e-5 .. 1e-2)
#   thresh.py DIR share  chunks whose probability is below f / n_candidates in every head (f = 0.001 .. 0.05)
import numpy as np, glob, sys
from recall import load, softmax, C, N_OUT
d, rule = sys.argv[1], sys.argv[2]
cuts = (0, 1e-5, 1e-4, 1e-3, 1e-2) if rule == 'max' else (0, 0.001, 0.01, 0.05)
for L in (5, 11, 17):
    N, nh, hd, scale, k = load(d, L)
    v = np.fromfile(f"{d}/v_L{L}_h0_b0.f32", dtype=np.float32).reshape(-1, hd)
    nc = N // C; k = k[:nc * C]; v = v[:nc * C]
    kc = k.reshape(nc, C, hd); lm = kc.mean(1); vm = v.reshape(nc, C, hd).mean(1)
    cos = (kc * lm[:, None, :]).sum(-1) / (np.linalg.norm(kc, axis=-1) * np.linalg.norm(lm, axis=-1)[:, None] + 1e-30)
    out = np.argsort(cos.min(1), kind='stable')[:N_OUT]
    res = {}
    for s in range(6):
        q = np.fromfile(glob.glob(f"{d}/q_L{L}_s{s}_p*.f32")[0], dtype=np.float32).reshape(nh, hd)
        sel = np.fromfile(f"{d}/sel_L{L}_h0_s{s}.i64", dtype=np.int64)
        lg = q @ k.T * scale; o = softmax(lg) @ v; n = np.linalg.norm(o, axis=1)
        m = np.zeros(nc, bool); m[sel] = True; m[out] = True; tok = np.repeat(m, C)
        cand = np.ones(nc, bool); cand[out] = False
        sl = q @ lm.T * scale
        if rule == 'max':
            w = np.exp(sl - sl.max(1, keepdims=True)).max(0); scale_cut = 1.0
        else:
            w = softmax(np.where(cand[None], sl, -np.inf)).max(0); scale_cut = 1.0 / cand.sum()
        for t in cuts:
            keep = (~m) & (w >= t * scale_cut)
            c = np.concatenate([np.where(tok[None], lg, -np.inf), np.where(keep[None], sl + np.log(C), -np.inf)], 1)
            pc = softmax(c); oc = pc[:, :nc * C] @ v + pc[:, nc * C:] @ vm
            res.setdefault(t, []).append((keep.sum(), (np.linalg.norm(oc - o, axis=1) / n).mean()))
    print(L, " ".join(f"cut {t:g}: rows {np.mean([a for a, b in r]):.0f} err {np.mean([b for a, b in r]):.4f}"
                      for t, r in res.items()))
