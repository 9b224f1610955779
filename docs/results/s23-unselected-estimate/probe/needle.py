import numpy as np, glob, sys
from recall import load, softmax, C, K_SEL, N_OUT
d=sys.argv[1]; steps=int(sys.argv[2])
for L in (5,11,17):
    N,nh,hd,scale,k=load(d,L)
    nc=N//C; kc=k[:nc*C].reshape(nc,C,hd); lm=kc.mean(1)
    cos=(kc*lm[:,None,:]).sum(-1)/(np.linalg.norm(kc,axis=-1)*np.linalg.norm(lm,axis=-1)[:,None]+1e-30)
    out=set(np.argsort(cos.min(1),kind='stable')[:N_OUT].tolist())
    print(f"layer {L}")
    for s in range(steps):
        q=np.fromfile(glob.glob(f"{d}/q_L{L}_s{s}_p*.f32")[0],dtype=np.float32).reshape(nh,hd)
        sel=set(np.fromfile(f"{d}/sel_L{L}_h0_s{s}.i64",dtype=np.int64).tolist())
        p=softmax(q@k[:nc*C].T*scale); cm=p.reshape(nh,nc,C).sum(-1)
        ls=softmax(q@lm.T*scale).max(0); rank=np.empty(nc,int); rank[np.argsort(-ls,kind='stable')]=np.arange(nc)
        line=[]
        for h in range(nh):
            top=np.argsort(-cm[h])[:3]
            line.append(" ".join(f"{c}:{cm[h,c]:.2f}{'O' if c in out else ('S' if c in sel else 'x')}r{rank[c]}" for c in top))
        print(f"  s{s}: "+" | ".join(line))
