# Walks dlib_face_recognition_resnet_model_v1.dat with dlib's field order (research for issue 5;
# see face-stack.md). Usage: python3 dlibparse.py PATH/dlib_face_recognition_resnet_model_v1.dat
import struct, sys, collections
class R:
    def __init__(s, d): s.d=d; s.p=0
    def u8(s): b=s.d[s.p]; s.p+=1; return b
    def int_(s):
        c=s.u8(); n=c&0x0f; neg=c&0x80
        assert c&0x70==0 and 1<=n<=8, (hex(c), s.p)
        v=int.from_bytes(s.d[s.p:s.p+n],'little'); s.p+=n
        return -v if neg else v
    def str_(s):
        n=s.int_(); v=s.d[s.p:s.p+n].decode(); s.p+=n; return v
    def flt(s):
        m=s.int_(); e=s.int_(); return m*2.0**e if m else 0.0
    def bool_(s):
        c=s.d[s.p:s.p+1]; s.p+=1; assert c in (b'0',b'1'), (c,s.p); return c==b'1'
    def tensor(s):
        v=s.int_(); assert v==2,(v,s.p)
        dims=[s.int_() for _ in range(4)]
        n=dims[0]*dims[1]*dims[2]*dims[3]
        off=s.p; s.p+=4*n
        return dims, off
    def alias(s):
        v=s.int_(); assert v==1; return [s.int_() for _ in range(4)]
    def peek_is_str(s):
        # a string starts with packed len then ascii letters
        save=s.p
        try:
            n=s.int_(); ok = 3<=n<40 and all(97<=c<=122 or c in b'_0123456789' for c in s.d[s.p:s.p+n])
        except AssertionError: ok=False
        s.p=save; return ok

def details(r):
    tag=r.str_(); info={'tag':tag}
    if tag=='con_4' or tag=='con_5':
        info['params']=r.tensor(); info['num_filters']=r.int_(); info['nr']=r.int_(); info['nc']=r.int_()
        info['stride']=(r.int_(),r.int_()); info['pad']=(r.int_(),r.int_())
        info['filters']=r.alias(); info['biases']=r.alias()
        info['mult']=[r.flt() for _ in range(4)]
        if tag=='con_5': info['use_bias']=r.bool_()
    elif tag=='affine_':
        info['params']=r.tensor(); info['gamma']=r.alias(); info['beta']=r.alias(); info['mode']=r.int_()
    elif tag in('relu_','add_prev_'):
        pass
    elif tag in('avg_pool_2','max_pool_2'):
        info['nr']=r.int_(); info['nc']=r.int_(); info['stride']=(r.int_(),r.int_()); info['pad']=(r.int_(),r.int_())
    elif tag=='fc_2':
        info['num_outputs']=r.int_(); info['num_inputs']=r.int_(); info['params']=r.tensor()
        info['weights']=r.alias(); info['biases']=r.alias(); info['bias_mode']=r.int_(); info['mult']=[r.flt() for _ in range(4)]
    elif tag=='bn_con2':
        info['params']=r.tensor(); info['gamma']=r.alias(); info['beta']=r.alias()
        info['means']=r.tensor(); info['invstds']=r.tensor(); info['running_means']=r.tensor(); info['running_variances']=r.tensor()
        info['num_updates']=r.int_(); info['running_stats_window']=r.int_(); info['lr']=[r.flt() for _ in range(4)]; info['eps']=r.flt()
    elif tag=='input_rgb_image_sized':
        info['avg']=(r.flt(),r.flt(),r.flt()); info['NR']=r.int_(); info['NC']=r.int_()
    elif tag=='input_rgb_image_pyramid':
        info['avg']=(r.flt(),r.flt(),r.flt()); info['pyramid_padding']=r.int_(); info['pyramid_outer_padding']=r.int_()
    else:
        raise Exception('unknown tag %s at %d'%(tag,r.p))
    return info

def parse(path, loss_reader):
    d=open(path,'rb').read(); r=R(d)
    v=r.int_(); print('loss-layer version',v)
    loss=loss_reader(r); print('loss', loss)
    versions=[]
    while not r.peek_is_str():
        versions.append(r.int_())
    print('wrapper versions (outer->inner), count', collections.Counter(versions), 'innermost', versions[-1])
    inp=details(r); print('input', inp)
    layers=[]
    # innermost add_layer (input specialisation)
    first=details(r); tr=[r.bool_() for _ in range(3)]; t=[r.tensor() for _ in range(3)]
    if versions[-1]>=3: sef=r.int_(); print('sample_expansion_factor',sef)
    layers.append(first)
    for v in reversed(versions[:-1]):
        if v==2:
            info=details(r); [r.bool_() for _ in range(3)]; ts=[r.tensor() for _ in range(3)]
            assert all(x[0]==[0,0,0,0] for x in ts)
            layers.append(info)
        else:
            assert v==1
            layers.append({'tag':'tag_or_skip'})
    print('consumed',r.p,'of',len(d))
    return layers

def loss_metric(r):
    t=r.str_(); return (t, r.flt(), r.flt())

if __name__=='__main__':
    path=sys.argv[1]
    layers=parse(path, loss_metric)
    c=collections.Counter(l['tag'] for l in layers); print(c)
    tot=0
    for i,l in enumerate(layers):
        if 'params' in l:
            dims,off=l['params']; n=dims[0]*dims[1]*dims[2]*dims[3]; tot+=n
        print(i, {k:v for k,v in l.items() if k not in ('mult',)})
    print('total floats', tot)
