/* Descriptor numbers as a program sees them: its first open() gets 3, and a
 * dup2() onto the low numbers (as a shell's `exec 3>file` does) reaches only
 * its own files.  A translator sharing the descriptor table with its guest
 * must keep its own files (a cache database, a socket) out of that range, or
 * the numbers differ and the dup2s land on its files.  Works in the current
 * directory; removes its scratch file again. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NAME "bttool_descriptors.tmp"

int main(void)
{
    int fd = open(NAME, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_RDONLY);
    printf("first open %d, second open %d\n", fd, null);
    close(null);
    for (int n = 3; n <= 12; n++) {
        if (n != fd && dup2(fd, n) != n)
            printf("dup2 onto %d failed\n", n);
    }
    for (int n = 3; n <= 12; n++) {
        char line[32];
        int len = snprintf(line, sizeof line, "through %d\n", n);
        if (write(n, line, len) != len)
            printf("write through %d failed\n", n);
    }
    char back[512] = {0};
    ssize_t got = pread(fd, back, sizeof back - 1, 0);
    printf("read back %zd bytes:\n%s", got, back);
    for (int n = 3; n <= 12; n++)
        close(n);
    int again = open(NAME, O_RDONLY);
    printf("after closing, open gives %d\n", again);
    close(again);
    unlink(NAME);
    return 0;
}
