/* x86-64-v3 code in a program: the pragmas below let GCC vectorise this
 * file with AVX2 and FMA (as -O3 -march=x86-64-v3 would), and the
 * intrinsics reach the forms compilers rarely pick (gathers, masked moves,
 * per-element shifts, lane permutes, F16C).  Under bttool's x86-64-v3 model
 * glibc also takes its AVX2 string functions (strlen, memcmp, strstr).
 * Output: values of each, compared byte for byte with the native run. */
#pragma GCC target("avx2,fma,bmi,bmi2,f16c,lzcnt,movbe")
#pragma GCC optimize("O3")
#include <stdio.h>
#include <math.h>
#include <string.h>
#include <immintrin.h>
double a[64], b[64], c[64];
float fa[64];
int ia[64];
static void vectorised(void) {
    for (int i = 0; i < 64; i++) { a[i] = i * 0.37 - 3; b[i] = 1.0 / (i + 1); c[i] = sin(i); fa[i] = i*1.1f; ia[i] = i*7 - 100; }
    double s = 0;
    for (int i = 0; i < 64; i++) s += a[i] * b[i] + c[i];
    printf("%.17g\n", s);
    for (int i = 0; i < 64; i++) a[i] = fma(a[i], b[i], -c[i]);
    for (int i = 0; i < 64; i++) printf("%.17g ", a[i]);
    printf("\n");
    float fs = 0; for (int i = 0; i < 64; i++) fs += fa[i] * fa[i];
    printf("%.9g\n", fs);
    long long is = 0; for (int i = 0; i < 64; i++) is += (long long)ia[i] * ia[i] + (ia[i] >> 3);
    printf("%lld\n", is);
    for (int i = 0; i < 64; i++) c[i] = (double)ia[i] / 3.0 + fa[i];
    for (int i = 0; i < 64; i += 8) printf("%.17g ", c[i]);
    printf("\n%g %g %g\n", sqrt(2.0), exp(1.5), log(7.25));
    printf("%g %g %g\n", pow(2.5, 3.3), atan2(1, 3), cbrt(27.5));
    char buf[300]; for (int i = 0; i < 299; i++) buf[i] = 'a' + i % 26; buf[299] = 0;
    printf("%zu %s %d\n", strlen(buf), strstr(buf, "xyz"), memcmp(buf, buf + 26, 100));

}
int tab[64]; double dtab[64]; float ftab[64];
static void pr(const char *n, __m256i v) { int o[8]; _mm256_storeu_si256((__m256i*)o, v); printf("%s", n); for (int i=0;i<8;i++) printf(" %d", o[i]); printf("\n"); }
static void intrinsics(void) {
    for (int i = 0; i < 64; i++) { tab[i] = i * 3 - 7; dtab[i] = i * 0.5; ftab[i] = i * 0.25f; }
    __m256i idx = _mm256_set_epi32(63, 1, 5, 9, 0, 33, 17, 2);
    pr("gather", _mm256_i32gather_epi32(tab, idx, 4));
    __m256i mask = _mm256_set_epi32(-1, 0, -1, 0, -1, -1, 0, 0);
    pr("mgather", _mm256_mask_i32gather_epi32(_mm256_set1_epi32(99), tab, idx, mask, 4));
    __m256d g = _mm256_i32gather_pd(dtab, _mm_set_epi32(3, 7, 11, 60), 8);
    double d[4]; _mm256_storeu_pd(d, g); printf("%g %g %g %g\n", d[0], d[1], d[2], d[3]);
    __m256i q = _mm256_i64gather_epi64((long long*)tab, _mm256_set_epi64x(1, 2, 3, 4), 8);
    pr("qgather", q);
    __m128i qd = _mm256_i64gather_epi32(tab, _mm256_set_epi64x(10, 20, 30, 40), 4);
    printf("qd %d %d %d %d\n", _mm_extract_epi32(qd,0), _mm_extract_epi32(qd,1), _mm_extract_epi32(qd,2), _mm_extract_epi32(qd,3));
    pr("mload", _mm256_maskload_epi32(tab + 8, mask));
    int out[8] = {0}; _mm256_maskstore_epi32(out, mask, _mm256_set1_epi32(5));
    for (int i = 0; i < 8; i++)
        printf("%d ", out[i]);
    printf("\n");
    pr("sllv", _mm256_sllv_epi32(_mm256_set1_epi32(3), _mm256_set_epi32(0, 1, 31, 32, 33, 4, 5, 100)));
    pr("srav", _mm256_srav_epi32(_mm256_set1_epi32(-1000), _mm256_set_epi32(0, 1, 31, 32, 33, 4, 5, 100)));
    pr("permd", _mm256_permutevar8x32_epi32(idx, _mm256_set_epi32(0,1,2,3,4,5,6,7)));
    pr("blendd", _mm256_blend_epi32(idx, mask, 0xA5));
    pr("blendv", _mm256_blendv_epi8(idx, _mm256_set1_epi8(7), mask));
    pr("perm2", _mm256_permute2x128_si256(idx, mask, 0x21));
    pr("bcast", _mm256_broadcastd_epi32(_mm_set_epi32(1,2,3,44)));
    pr("cvt", _mm256_cvtepu8_epi32(_mm_set_epi8(1,2,3,4,5,6,7,8,9,10,11,12,13,14,-1,-2)));
    pr("unpack", _mm256_unpacklo_epi16(idx, mask));
    pr("shuf", _mm256_shuffle_epi32(idx, 0x1b));
    pr("alignr", _mm256_alignr_epi8(idx, mask, 5));
    pr("packs", _mm256_packs_epi32(idx, _mm256_set1_epi32(100000)));
    pr("madd", _mm256_madd_epi16(idx, mask));
    pr("mulhi", _mm256_mulhi_epi16(idx, _mm256_set1_epi16(-3000)));
    pr("sad", _mm256_sad_epu8(idx, mask));
    pr("sll", _mm256_sll_epi32(idx, _mm_set_epi32(0,0,0,3)));
    pr("srli", _mm256_srli_si256(idx, 3));
    __m256 f = _mm256_set_ps(1,2,3,4,5,6,7,8);
    __m256 c = _mm256_cmp_ps(f, _mm256_set1_ps(4.5f), _CMP_GE_OQ);
    printf("cmp %x\n", _mm256_movemask_ps(c));
    printf("test %d %d\n", _mm256_testz_si256(idx, mask), _mm256_testc_si256(mask, mask));
    __m256 h = _mm256_hadd_ps(f, f); float fo[8]; _mm256_storeu_ps(fo, h); printf("%g %g %g\n", fo[0], fo[4], fo[7]);
    __m256 dp = _mm256_dp_ps(f, f, 0xF1); _mm256_storeu_ps(fo, dp); printf("%g %g\n", fo[0], fo[4]);
    __m256 pl = _mm256_permutevar_ps(f, _mm256_set_epi32(0,1,2,3,3,2,1,0)); _mm256_storeu_ps(fo, pl); printf("%g %g %g\n", fo[0], fo[3], fo[5]);
    __m256 rnd = _mm256_round_ps(_mm256_set1_ps(2.5f), _MM_FROUND_TO_NEAREST_INT|_MM_FROUND_NO_EXC); _mm256_storeu_ps(fo, rnd); printf("%g\n", fo[0]);
    __m128 hf = _mm_cvtph_ps(_mm_set_epi16(0,0,0,0,0x3c00,0x4000,0xc000,0x7bff)); float h4[4]; _mm_storeu_ps(h4, hf); printf("%g %g %g %g\n", h4[0], h4[1], h4[2], h4[3]);

}
int main(void)
{
    vectorised();
    intrinsics();
    return 0;
}
