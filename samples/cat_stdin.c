/* Copies stdin to stdout with read(2)/write(2) and reports on stderr how many
 * bytes and read calls that took (read count depends on the pipe, so only the
 * byte count and a checksum are printed). */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <unistd.h>

int main(void)
{
    static unsigned char buf[65536];
    unsigned long long total = 0;
    uint32_t sum = 0;

    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("read");
            return 1;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31u + buf[i];
        total += (unsigned long long)n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                perror("write");
                return 1;
            }
            off += w;
        }
    }
    fprintf(stderr, "cat_stdin: %llu bytes, checksum %08x\n", total, (unsigned)sum);
    return 0;
}
