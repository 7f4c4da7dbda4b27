/* Floating point formatting, parsing and arithmetic.
 *
 * printf/strtod are exact in glibc, so their output is printed in full.
 * Transcendental libm functions may be dispatched (ifunc) to FMA/AVX2 variants
 * depending on CPUID, which can change the last bit; those are printed with
 * %.12g so that a different but valid variant still gives the same text.
 * IEEE-exact operations (+ - * / sqrt, floor, conversions) are printed in %a. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double values[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.3, 1.0 / 3.0, 2.0 / 3.0, 3.14159265358979323846,
    2.71828182845904523536, 1e-300, 1e300, 123456789.0, 1234567890123456789.0, 9007199254740993.0,
    0.000123456, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e22, 1e23, 0.125,
    999999.5, 0.9999995, 1.5, 2.5, -2.5, 1e-5, 100.0, 65536.0, 4294967296.0, 1.0e15, 1.0e16,
    1.0e17, 0.05, 0.15, 0.25, 0.35, 12345.678, -98765.4321,
};

static const char *formats[] = {
    "%f", "%.0f", "%.1f", "%.3f", "%.10f", "%.20f", "%e", "%.0e", "%.3e", "%.15e", "%.17e",
    "%g", "%.1g", "%.6g", "%.10g", "%.17g", "%#g", "%a", "%.3a", "%A", "%+12.4f", "%-12.3e|",
    "%012.5g", "% .2f",
};

static const char *parse[] = {
    "0", "-0", "1", "3.14159", "1e10", "1E-10", "  42.5abc", "+.5", "-.25e+2", "0x1p-2",
    "0x1.8p1", "0X.8P0", "inf", "-Infinity", "nan", "NAN(123)", "1e400", "-1e400", "1e-400",
    "4.9406564584124654e-324", "2.4703282292062327e-324", "2.4703282292062328e-324",
    "0.1000000000000000055511151231257827", "123456789012345678901234567890",
    "1.7976931348623158e308", "1.7976931348623159e308", "9007199254740993",
    "0.30000000000000004", "abc", "", "   ", "1.5e", "1e+", ".e1", "5.", "0x", "00012.5000",
    "2.2250738585072011e-308", "1.00000000000000011102230246251565404236316680908203125",
    "1.00000000000000011102230246251565404236316680908203124",
};

static void print_bits(const char *label, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    printf("%s %016llx\n", label, (unsigned long long)u);
}

int main(void)
{
    size_t nv = sizeof values / sizeof values[0];
    size_t nf = sizeof formats / sizeof formats[0];
    char buf[512];

    printf("== printf\n");
    for (size_t i = 0; i < nv; i++) {
        printf("[%zu]", i);
        for (size_t f = 0; f < nf; f++) {
            snprintf(buf, sizeof buf, formats[f], values[i]);
            printf(" %s", buf);
        }
        printf("\n");
    }
    printf("special: %f %f %f %e %g %a %F %E %G\n", INFINITY, -INFINITY, NAN, INFINITY, -NAN,
           INFINITY, INFINITY, -INFINITY, NAN);
    printf("width/star: [%*.*f] [%-*.*e] [%.*g]\n", 15, 4, 3.14159, 14, 2, 2.5e-7, 3, 1234.5);
    printf("float promoted: %.9g %.9g %a\n", (double)0.1f, (double)(1.0f / 3.0f), (double)FLT_MAX);

    printf("== strtod\n");
    for (size_t i = 0; i < sizeof parse / sizeof parse[0]; i++) {
        char *end;
        double d = strtod(parse[i], &end);
        printf("strtod(\"%s\") = %.17g consumed=%td ", parse[i], d, end - parse[i]);
        print_bits("bits", d);
    }
    for (size_t i = 0; i < 6; i++) {
        char *end;
        float f = strtof(parse[i + 2], &end);
        printf("strtof(\"%s\") = %.9g %a\n", parse[i + 2], (double)f, (double)f);
    }

    printf("== arithmetic (exact)\n");
    {
        double acc = 0.0, prod = 1.0, h = 0.0;
        for (int i = 1; i <= 1000; i++) {
            acc += 1.0 / i;
            prod *= 1.0 + 1.0 / (i * 7.0);
            h += (double)i * i / (i + 0.5);
        }
        printf("harmonic %a product %a mix %a\n", acc, prod, h);
        float fa = 0.0f;
        for (int i = 1; i <= 1000; i++)
            fa += 1.0f / (float)i;
        printf("float harmonic %a\n", (double)fa);
        for (int i = 0; i < 12; i++) {
            double x = values[i + 2] * 7.25 - 3.0;
            printf("x=%a sqrt|x|=%a floor=%a ceil=%a trunc=%a round=%a rint=%a fmod=%a\n", x,
                   sqrt(fabs(x)), floor(x), ceil(x), trunc(x), round(x), rint(x), fmod(x, 0.75));
        }
        double conv[] = {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1e10, -1e10, 4294967295.9, 1e19};
        for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++) {
            long long ll = (long long)conv[i];
            long r = lrint(conv[i]);
            unsigned long long ull = conv[i] >= 0 ? (unsigned long long)conv[i] : 0;
            printf("conv %g -> ll %lld lrint %ld ull %llu float %a\n", conv[i], ll, r, ull,
                   (double)(float)conv[i]);
        }
        long long ints[] = {0, 1, -1, 9007199254740993LL, -9007199254740993LL, INT64_MAX, INT64_MIN};
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
            printf("i2d %lld -> %a %a\n", ints[i], (double)ints[i], (double)(unsigned long long)ints[i]);
        printf("compare: %d %d %d %d %d\n", NAN == NAN, 0.0 == -0.0, isnan(NAN / 1.0),
               isinf(1.0 / 0.0 * 1e308), signbit(-0.0));
        print_bits("0.1+0.2", 0.1 + 0.2);
        print_bits("1/0", 1.0 / values[0] + 0.0);
        print_bits("sub", 5e-324 / 2.0 + 2.2250738585072014e-308 * 0.5);
    }

    printf("== rounding modes\n");
    {
        static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
        static const char *names[] = {"nearest", "upward", "downward", "towardzero"};
        for (int m = 0; m < 4; m++) {
            volatile double one = 1.0, three = 3.0, big = 2.5, neg = -2.5;
            fesetround(modes[m]);
            volatile double q = one / three;
            volatile double r1 = rint(big), r2 = nearbyint(neg);
            fesetround(FE_TONEAREST);
            printf("%s: 1/3=%a rint(2.5)=%a nearbyint(-2.5)=%a\n", names[m], q, r1, r2);
        }
    }

    printf("== libm (12 significant digits)\n");
    for (int i = 0; i < 24; i++) {
        double x = (i - 8) * 0.37 + 0.01;
        printf("x=%.3f sin=%.12g cos=%.12g tan=%.12g exp=%.12g log|x|=%.12g pow(|x|,1.7)=%.12g "
               "atan2=%.12g cbrt=%.12g hypot=%.12g\n",
               x, sin(x), cos(x), tan(x), exp(x), log(fabs(x)), pow(fabs(x), 1.7),
               atan2(x, 0.5), cbrt(x), hypot(x, 3.0));
    }
    printf("log10(1000)=%.12g log2(1024)=%.12g exp2(10)=%.12g expm1(1e-10)=%.12g log1p(1e-10)=%.12g\n",
           log10(1000.0), log2(1024.0), exp2(10.0), expm1(1e-10), log1p(1e-10));
    printf("sinh=%.12g cosh=%.12g tanh=%.12g asin=%.12g acos=%.12g atan=%.12g\n", sinh(1.0),
           cosh(1.0), tanh(0.5), asin(0.5), acos(0.5), atan(1.0));
    printf("pow(2,0.5)=%.12g pow(-8,1/3.)=%g pow(0,0)=%g pow(10,-3)=%.12g\n", pow(2.0, 0.5),
           pow(-8.0, 1.0 / 3.0), pow(0.0, 0.0), pow(10.0, -3.0));
    printf("frexp/ldexp/modf: ");
    {
        int e;
        double ip;
        double m = frexp(1234.5, &e);
        double fr = modf(-3.75, &ip);
        printf("%a %d %a %a %a\n", m, e, ldexp(0.75, 20), fr, ip);
    }

    printf("== long double (x87)\n");
    {
        long double a = 1.0L, s = 0.0L;
        for (int i = 1; i <= 30; i++) {
            a /= i;
            s += a;
        }
        printf("e-1 ~ %.20Lf %La\n", s, s);
        long double third = 1.0L / 3.0L;
        printf("1/3L = %.25Lg %La sqrtl(2) = %La\n", third, third, sqrtl(2.0L));
        printf("ld conv: %Lg %lld %La\n", (long double)1e300 * 1e300, (long long)(third * 1e18L),
               (long double)0.1);
    }
    return 0;
}
