import numpy as np, glob, os, sys, re
C=8; K_SEL=256; N_OUT=48
def load(d, L):
    meta=open(f"{d}/meta_L{L}.txt").read().split()
    N,nh,nkv,hd,scale=int(meta[0]),int(meta[1]),int(meta[2]),int(meta[3]),float(meta[4])
    k=np.fromfile(f"{d}/k_L{L}_h0_b0.f32",dtype=np.float32).reshape(-1,hd)
    return N,nh,hd,scale,k
def softmax(x,ax=-1):
    m=x.max(ax,keepdims=True); e=np.exp(x-m); return e/e.sum(ax,keepdims=True)
def analyse(d, L, steps, methods):
    N,nh,hd,scale,k=load(d,L)
    nc=N//C; kc=k[:nc*C].reshape(nc,C,hd)
    lm=kc.mean(1)
    cos=(kc*lm[:,None,:]).sum(-1)/(np.linalg.norm(kc,axis=-1)*np.linalg.norm(lm,axis=-1)[:,None]+1e-30)
    out=np.argsort(cos.min(1),kind='stable')[:N_OUT]
    isout=np.zeros(nc,bool); isout[out]=True
    kmin=kc.min(1); kmax=kc.max(1)
    res={m:[] for m in methods}; res['oracle']=[]; res['dumped']=[]
    for s in range(steps):
        fs=glob.glob(f"{d}/q_L{L}_s{s}_p*.f32")
        if not fs: break
        q=np.fromfile(fs[0],dtype=np.float32).reshape(nh,hd)
        lg=q@k[:nc*C].T*scale
        p=softmax(lg)                       # per head over compressed tokens
        cm=p.reshape(nh,nc,C).sum(-1)       # chunk mass per head
        def cap(sel):
            m=np.zeros(nc,bool); m[sel]=True; m|=isout
            return cm[:,m].sum(1)           # per head
        cand=np.where(~isout)[0]
        mh=cm.max(0)
        res['oracle'].append(cap(cand[np.argsort(-mh[cand],kind='stable')[:K_SEL]]))
        sel=np.fromfile(f"{d}/sel_L{L}_h0_s{s}.i64",dtype=np.int64)
        res['dumped'].append(cap(sel))
        for m in methods:
            sc=methods[m](q,lm,kmin,kmax,kc,scale)
            res[m].append(cap(cand[np.argsort(-sc[cand],kind='stable')[:K_SEL]]))
    return res
M={
 'lm_softmax_max': lambda q,lm,mn,mx,kc,sc: softmax(q@lm.T*sc).max(0),
 'lm_softmax_sum': lambda q,lm,mn,mx,kc,sc: softmax(q@lm.T*sc).sum(0),
 'lm_logit_max': lambda q,lm,mn,mx,kc,sc: (q@lm.T).max(0),
 'quest': lambda q,lm,mn,mx,kc,sc: np.maximum(q[:,None,:]*mn[None],q[:,None,:]*mx[None]).sum(-1).max(0),
 'quest_softmax_max': lambda q,lm,mn,mx,kc,sc: softmax(np.maximum(q[:,None,:]*mn[None],q[:,None,:]*mx[None]).sum(-1)*sc).max(0),
}
if __name__=='__main__':
    d=sys.argv[1]; steps=int(sys.argv[2]) if len(sys.argv)>2 else 4
    for L in sorted(int(re.search(r'meta_L(\d+)',f).group(1)) for f in glob.glob(f"{d}/meta_L*.txt")):
        r=analyse(d,L,steps,M)
        print(f"layer {L}: mass captured per head (mean over steps; min head at step 0..)")
        for m,v in r.items():
            v=np.array(v)
            print(f"  {m:18s} mean {v.mean():.3f}  per-step min-head " + " ".join(f"{x:.2f}" for x in v.min(1)))
