/* nbody: double-precision physics.  The classic 5-body Jovian-planet
 * simulation (sqrt in the inner loop), followed by a damped-spring particle
 * system that calls libm's sin, cos and exp every step.  Stresses scalar
 * SSE2 floating point, divisions, square roots and libm calls.
 *
 *   nbody [SCALE]      SCALE (default 1.0) multiplies the step counts.
 *
 * The results are printed rounded (%.9f) so that the last-ulp differences
 * allowed between glibc's libm variants (FMA vs SSE2, chosen by cpuid) do
 * not change the output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef STEPS
#define STEPS 7500000
#endif
#ifndef SPRING_STEPS
#define SPRING_STEPS 3750000
#endif

#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24
#define NBODIES 5

struct body { double x, y, z, vx, vy, vz, mass; };

static struct body bodies[NBODIES] = {
    {0, 0, 0, 0, 0, 0, SOLAR_MASS},
    {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
     1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
     -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS},
    {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
     -2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
     2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS},
    {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
     -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS},
    {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
     -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * SOLAR_MASS},
};

static void offset_momentum(struct body *b)
{
    double px = 0, py = 0, pz = 0;
    for (int i = 0; i < NBODIES; i++) {
        px += b[i].vx * b[i].mass;
        py += b[i].vy * b[i].mass;
        pz += b[i].vz * b[i].mass;
    }
    b[0].vx = -px / SOLAR_MASS;
    b[0].vy = -py / SOLAR_MASS;
    b[0].vz = -pz / SOLAR_MASS;
}

static double energy(const struct body *b)
{
    double e = 0;
    for (int i = 0; i < NBODIES; i++) {
        e += 0.5 * b[i].mass * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < NBODIES; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            e -= b[i].mass * b[j].mass / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

static void advance(struct body *b, double dt)
{
    for (int i = 0; i < NBODIES; i++) {
        for (int j = i + 1; j < NBODIES; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            double d2 = dx * dx + dy * dy + dz * dz;
            double mag = dt / (d2 * sqrt(d2));
            b[i].vx -= dx * b[j].mass * mag;
            b[i].vy -= dy * b[j].mass * mag;
            b[i].vz -= dz * b[j].mass * mag;
            b[j].vx += dx * b[i].mass * mag;
            b[j].vy += dy * b[i].mass * mag;
            b[j].vz += dz * b[i].mass * mag;
        }
    }
    for (int i = 0; i < NBODIES; i++) {
        b[i].x += dt * b[i].vx;
        b[i].y += dt * b[i].vy;
        b[i].z += dt * b[i].vz;
    }
}

/* A ring of particles on damped springs, driven by a sinusoidal force;
 * the damping factor exp(-k t) and the drive sin/cos are recomputed with
 * libm every step (the argument stays well conditioned). */
#define NP 8
static double springs(long steps)
{
    double pos[NP], vel[NP];
    for (int i = 0; i < NP; i++) {
        pos[i] = cos(2 * PI * i / NP);
        vel[i] = 0;
    }
    const double dt = 1e-3;
    double work = 0;
    for (long s = 0; s < steps; s++) {
        double t = (double)(s % 20000) * dt;     /* bounded argument */
        double drive = sin(3.0 * t) + 0.25 * cos(7.0 * t);
        double damp = exp(-0.05 * t);
        for (int i = 0; i < NP; i++) {
            double l = pos[(i + NP - 1) % NP], r = pos[(i + 1) % NP];
            double f = (l + r - 2 * pos[i]) - 0.1 * vel[i] + 0.01 * drive * damp;
            vel[i] += f * dt;
        }
        for (int i = 0; i < NP; i++) {
            pos[i] += vel[i] * dt;
            work += fabs(vel[i]) * dt;
        }
    }
    double e = 0;
    for (int i = 0; i < NP; i++)
        e += pos[i] * pos[i] + vel[i] * vel[i];
    return e + work;
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long steps = (long)(STEPS * scale), ssteps = (long)(SPRING_STEPS * scale);
    if (steps < 1) steps = 1;
    if (ssteps < 1) ssteps = 1;

    offset_momentum(bodies);
    double e0 = energy(bodies);
    for (long i = 0; i < steps; i++)
        advance(bodies, 0.01);
    double e1 = energy(bodies);
    double sp = springs(ssteps);
    printf("nbody steps=%ld e0=%.9f e1=%.9f\n", steps, e0, e1);
    printf("springs steps=%ld result=%.9f\n", ssteps, sp);
    return 0;
}
