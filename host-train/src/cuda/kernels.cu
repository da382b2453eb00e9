// shiftkit CUDA kernels (compiled once by NVRTC when the backend is created).
// Every activation buffer is NHWC in the halo layout of layers::Geom: pixel (i, y, x) sits at
// lead + i*img + y*row + x with row = w+1, img = (h+1)*row, lead = row+1; halo pixels hold zero.
// One thread per element unless stated; `n,h,w,c` describe the tensor read or written.

__device__ __forceinline__ long long hpix(int i, int y, int x, int h, int w) {
    long long row = w + 1, img = (long long)(h + 1) * row;
    return row + 1 + (long long)i * img + (long long)y * row + x;
}

// Decomposes a dense NHWC index t into (i, y, x, ch) and returns the halo element index.
__device__ __forceinline__ long long hidx(long long t, int h, int w, int c, int* ch) {
    *ch = (int)(t % c); long long p = t / c;
    int x = (int)(p % w); p /= w;
    int y = (int)(p % h); int i = (int)(p / h);
    return hpix(i, y, x, h, w) * c + *ch;
}

extern "C" __global__ void input_norm(float* x, const unsigned char* in, const float* mean,
                                      const float* stdv, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * c) return;
    int ch; long long o = hidx(t, h, w, c, &ch);
    x[o] = ((float)in[t] / 255.0f - mean[ch]) / stdv[ch];
}

// Zeroes the halo pixels inside the span: the pixel after each row and each image's halo row.
extern "C" __global__ void zero_halo(float* buf, int n, int h, int w, int c) {
    long long per = (long long)(h + w + 1) * c;
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * per) return;
    int i = (int)(t / per); long long r = t % per; int ch = (int)(r % c); int k = (int)(r / c);
    long long p = k < h ? hpix(i, k, w, h, w) : hpix(i, h, k - h, h, w);
    buf[p * c + ch] = 0.0f;
}

extern "C" __global__ void relu_fwd(float* y, const float* x, long long len) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t < len) y[t] = fmaxf(x[t], 0.0f);
}
extern "C" __global__ void relu_bwd(float* dx, const float* dy, const float* y, long long len) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t < len && y[t] > 0.0f) dx[t] += dy[t];
}
extern "C" __global__ void add_fwd(float* y, const float* a, const float* b, long long len) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t < len) y[t] = a[t] + b[t];
}
extern "C" __global__ void accum(float* dx, const float* dy, long long len) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t < len) dx[t] += dy[t];
}

// Per-channel sums over image pixels: s1 += a, s2 += a * (b ? b : a). Block (32, 8), grid
// (ceil(c/32), G): block y-lanes stride over pixels; partials meet in shared memory, then one
// double atomicAdd per channel and block.
extern "C" __global__ void bn_sums(double* s1, double* s2, const float* a, const float* b,
                                   int n, int h, int w, int c) {
    __shared__ double sh1[8][32]; __shared__ double sh2[8][32];
    int ch = blockIdx.x * 32 + threadIdx.x;
    long long pixels = (long long)n * h * w;
    float r1 = 0.0f, r2 = 0.0f; double d1 = 0.0, d2 = 0.0; int cnt = 0;
    if (ch < c) {
        for (long long p = blockIdx.y * 8 + threadIdx.y; p < pixels; p += (long long)gridDim.y * 8) {
            int x = (int)(p % w); long long q = p / w; int y = (int)(q % h); int i = (int)(q / h);
            long long o = hpix(i, y, x, h, w) * c + ch;
            float av = a[o]; float bv = b ? b[o] : av;
            r1 += av; r2 += av * bv;
            if (++cnt == 64) { d1 += r1; d2 += r2; r1 = 0.0f; r2 = 0.0f; cnt = 0; }
        }
    }
    sh1[threadIdx.y][threadIdx.x] = d1 + r1; sh2[threadIdx.y][threadIdx.x] = d2 + r2;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        double t1 = 0.0, t2 = 0.0;
        for (int k = 0; k < 8; k++) { t1 += sh1[k][threadIdx.x]; t2 += sh2[k][threadIdx.x]; }
        atomicAdd(&s1[ch], t1); atomicAdd(&s2[ch], t2);
    }
}

// Training statistics -> normalisation coefficients and running estimates (PyTorch semantics).
extern "C" __global__ void bn_train_coef(const double* s1, const double* s2, const float* gamma,
        const float* beta, float* rmean, float* rvar, float* mean_o, float* invstd_o,
        float* scale, float* shift, double count, float eps, float mom, int c) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double mean = s1[ch] / count;
    double var = fmax(s2[ch] / count - mean * mean, 0.0);
    double invstd = 1.0 / sqrt(var + (double)eps);
    mean_o[ch] = (float)mean; invstd_o[ch] = (float)invstd;
    scale[ch] = gamma[ch] * (float)invstd;
    shift[ch] = beta[ch] - (float)mean * scale[ch];
    double unb = count > 1.0 ? var * count / (count - 1.0) : var;
    rmean[ch] = (1.0f - mom) * rmean[ch] + mom * (float)mean;
    rvar[ch] = (1.0f - mom) * rvar[ch] + mom * (float)unb;
}

extern "C" __global__ void bn_eval_coef(const float* gamma, const float* beta, const float* rm,
        const float* rv, float* scale, float* shift, float eps, int c) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    scale[ch] = gamma[ch] / sqrtf(rv[ch] + eps);
    shift[ch] = beta[ch] - rm[ch] * scale[ch];
}

// y = x * scale + shift on image pixels (halo untouched).
extern "C" __global__ void bn_apply(float* y, const float* x, const float* scale,
                                   const float* shift, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * c) return;
    int ch; long long o = hidx(t, h, w, c, &ch);
    y[o] = x[o] * scale[ch] + shift[ch];
}

// k1 = gamma*invstd, k2 = -gamma*invstd/M * sum(dy*xhat), k0 = -gamma*invstd/M * sum(dy);
// dgamma += sum(dy*xhat), dbeta += sum(dy). s1 = sum(dy), s2 = sum(dy*x).
extern "C" __global__ void bn_bwd_coef(const double* s1, const double* s2, const float* gamma,
        const float* mean, const float* invstd, float* dgamma, float* dbeta, float* k0,
        float* k1, float* k2, double m, int c) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double mu = mean[ch], is = invstd[ch];
    double sdy = s1[ch];
    double sdyxh = is * (s2[ch] - mu * sdy);
    dgamma[ch] += (float)sdyxh; dbeta[ch] += (float)sdy;
    double a = (double)gamma[ch] * is / m;
    k1[ch] = (float)(a * m); k2[ch] = (float)(-a * sdyxh); k0[ch] = (float)(-a * sdy);
}

extern "C" __global__ void bn_bwd_apply(float* dx, const float* dy, const float* x,
        const float* mean, const float* invstd, const float* k0, const float* k1,
        const float* k2, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * c) return;
    int ch; long long o = hidx(t, h, w, c, &ch);
    float xhat = (x[o] - mean[ch]) * invstd[ch];
    dx[o] += k1[ch] * dy[o] + k2[ch] * xhat + k0[ch];
}

// 2x2 average pool; n,h,w,c are the OUTPUT's (input is 2h x 2w).
extern "C" __global__ void avgpool2_fwd(float* y, const float* x, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * c) return;
    int ch; long long o = hidx(t, h, w, c, &ch);
    long long p = t / c; int ox = (int)(p % w); p /= w; int oy = (int)(p % h); int i = (int)(p / h);
    int H = 2 * h, W = 2 * w;
    float s = x[hpix(i, 2*oy, 2*ox, H, W) * c + ch] + x[hpix(i, 2*oy, 2*ox+1, H, W) * c + ch]
            + x[hpix(i, 2*oy+1, 2*ox, H, W) * c + ch] + x[hpix(i, 2*oy+1, 2*ox+1, H, W) * c + ch];
    y[o] = 0.25f * s;
}
extern "C" __global__ void avgpool2_bwd(float* dx, const float* dy, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * c) return;
    int ch; long long o = hidx(t, h, w, c, &ch);
    long long p = t / c; int ox = (int)(p % w); p /= w; int oy = (int)(p % h); int i = (int)(p / h);
    int H = 2 * h, W = 2 * w; float g = 0.25f * dy[o];
    dx[hpix(i, 2*oy, 2*ox, H, W) * c + ch] += g; dx[hpix(i, 2*oy, 2*ox+1, H, W) * c + ch] += g;
    dx[hpix(i, 2*oy+1, 2*ox, H, W) * c + ch] += g; dx[hpix(i, 2*oy+1, 2*ox+1, H, W) * c + ch] += g;
}

// 3x3 / 2 max pool, padding 1. n,h,w,c are the INPUT's; output is ((h-1)/2+1, (w-1)/2+1).
extern "C" __global__ void maxpool_fwd(float* y, const float* x, int n, int h, int w, int c) {
    int oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1;
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * oh * ow * c) return;
    int ch; long long o = hidx(t, oh, ow, c, &ch);
    long long p = t / c; int ox = (int)(p % ow); p /= ow; int oy = (int)(p % oh); int i = (int)(p / oh);
    float m = -__int_as_float(0x7f800000);
    for (int ky = 0; ky < 3; ky++) { int iy = 2*oy + ky - 1; if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < 3; kx++) { int ix = 2*ox + kx - 1; if (ix < 0 || ix >= w) continue;
            m = fmaxf(m, x[hpix(i, iy, ix, h, w) * c + ch]); } }
    y[o] = m;
}
// Routes each output gradient to the first (row-major) tap holding the max; windows overlap, so
// the add is atomic.
extern "C" __global__ void maxpool_bwd(float* dx, const float* dy, const float* x,
                                       int n, int h, int w, int c) {
    int oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1;
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * oh * ow * c) return;
    int ch; long long o = hidx(t, oh, ow, c, &ch);
    long long p = t / c; int ox = (int)(p % ow); p /= ow; int oy = (int)(p % oh); int i = (int)(p / oh);
    float m = -__int_as_float(0x7f800000); long long best = -1;
    for (int ky = 0; ky < 3; ky++) { int iy = 2*oy + ky - 1; if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < 3; kx++) { int ix = 2*ox + kx - 1; if (ix < 0 || ix >= w) continue;
            long long q = hpix(i, iy, ix, h, w) * c + ch;
            if (x[q] > m || best < 0) { m = x[q]; best = q; } } }
    atomicAdd(&dx[best], dy[o]);
}

// Global average pool: one thread per (image, channel). n,h,w,c are the input's.
extern "C" __global__ void gap_fwd(float* y, const float* x, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * c) return;
    int ch = (int)(t % c), i = (int)(t / c);
    float s = 0.0f;
    for (int yy = 0; yy < h; yy++) for (int xx = 0; xx < w; xx++) s += x[hpix(i, yy, xx, h, w) * c + ch];
    y[hpix(i, 0, 0, 1, 1) * c + ch] = s * (1.0f / (float)(h * w));
}
extern "C" __global__ void gap_bwd(float* dx, const float* dy, int n, int h, int w, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * c) return;
    int ch; long long o = hidx(t, h, w, c, &ch);
    int i = (int)(t / ((long long)h * w * c));
    dx[o] += dy[hpix(i, 0, 0, 1, 1) * c + ch] * (1.0f / (float)(h * w));
}

// Linear bias on (n, 1, 1, c) tensors: y += b; db += sum over images of dy.
extern "C" __global__ void bias_add(float* y, const float* b, int n, int c) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * c) return;
    int ch = (int)(t % c), i = (int)(t / c);
    y[hpix(i, 0, 0, 1, 1) * c + ch] += b[ch];
}
extern "C" __global__ void bias_grad(float* db, const float* dy, int n, int c) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += dy[hpix(i, 0, 0, 1, 1) * c + ch];
    db[ch] += s;
}

// Softmax cross-entropy, one thread per image, on (n, 1, 1, classes) halo tensors. Writes
// dlogits = (softmax - onehot) / n, adds the image's loss to out[0] and 1 to out[1] if correct.
extern "C" __global__ void softmax_xent(float* dz, double* out, const float* z,
                                       const unsigned char* labels, int n, int classes) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long base = hpix(i, 0, 0, 1, 1) * classes;
    float mx = -__int_as_float(0x7f800000); int arg = 0;
    for (int k = 0; k < classes; k++) { float v = z[base + k]; if (v > mx) mx = v; if (v > z[base + arg]) arg = k; }
    double sum = 0.0;
    for (int k = 0; k < classes; k++) sum += exp((double)(z[base + k] - mx));
    int y = labels[i];
    atomicAdd(&out[0], log(sum) - (double)(z[base + y] - mx));
    if (arg == y) atomicAdd(&out[1], 1.0);
    for (int k = 0; k < classes; k++) {
        double p = exp((double)(z[base + k] - mx)) / sum;
        dz[base + k] = (float)((p - (k == y ? 1.0 : 0.0)) / (double)n);
    }
}

// im2col over the output span: row r is output pixel first + r (halo output pixels and taps
// outside the input give zeros); columns (ky, kx, ci). gx = input dims, oh/ow = output dims.
extern "C" __global__ void im2col(float* col, const float* x, long long first, long long count,
        int h, int w, int cin, int oh, int ow, int k, int stride, int pad) {
    long long kkc = (long long)k * k * cin;
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= count * kkc) return;
    long long r = t / kkc; int j = (int)(t % kkc);
    int ci = j % cin; int kx = (j / cin) % k; int ky = j / (cin * k);
    long long rel = first + r - (long long)(ow + 2);   // minus lead
    long long orow = ow + 1, oimg = (long long)(oh + 1) * orow;
    int i = (int)(rel / oimg); long long q = rel % oimg;
    int oy = (int)(q / orow), ox = (int)(q % orow);
    float v = 0.0f;
    if (oy < oh && ox < ow) {
        int iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
        if (iy >= 0 && ix >= 0 && iy < h && ix < w) v = x[hpix(i, iy, ix, h, w) * cin + ci];
    }
    col[t] = v;
}

// dx += col2im(dcol): one thread per input image element gathers every (ky, kx) tap that read it.
extern "C" __global__ void col2im(float* dx, const float* dcol, long long first,
        int n, int h, int w, int cin, int oh, int ow, int k, int stride, int pad) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= (long long)n * h * w * cin) return;
    int ci; long long o = hidx(t, h, w, cin, &ci);
    long long p = t / cin; int ix = (int)(p % w); p /= w; int iy = (int)(p % h); int i = (int)(p / h);
    long long kkc = (long long)k * k * cin;
    float s = 0.0f;
    for (int ky = 0; ky < k; ky++) {
        int ty = iy + pad - ky; if (ty < 0 || ty % stride) continue; int oy = ty / stride; if (oy >= oh) continue;
        for (int kx = 0; kx < k; kx++) {
            int tx = ix + pad - kx; if (tx < 0 || tx % stride) continue; int ox = tx / stride; if (ox >= ow) continue;
            long long r = hpix(i, oy, ox, oh, ow) - first;
            s += dcol[r * kkc + ((long long)ky * k + kx) * cin + ci];
        }
    }
    dx[o] += s;
}

// SGD with momentum, PyTorch semantics, on tensors whose mask byte is 1.
extern "C" __global__ void sgd(float* p, float* buf, const float* g, const unsigned char* mask,
        long long len, float lr, float mom, float wd, int nesterov) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= len || !mask[t]) return;
    float d = g[t] + wd * p[t];
    float b = mom * buf[t] + d;
    buf[t] = b;
    p[t] -= lr * (nesterov ? d + mom * b : b);
}

extern "C" __global__ void zero_f64(double* a, int len) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < len) a[t] = 0.0;
}
