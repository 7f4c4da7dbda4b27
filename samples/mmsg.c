/* sendmmsg and recvmmsg: several datagrams in one system call each, with
 * iovecs of two parts and the lengths the kernel writes back; then the
 * kernel's answers to a bad vector and to a vector of none. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) {
        perror("socketpair");
        return 1;
    }
    const char *heads[3] = {"alpha-", "beta-", "gamma-"};
    const char *tails[3] = {"one", "two two", "three three three"};
    struct iovec out_iov[3][2];
    struct mmsghdr out[3];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) {
        out_iov[i][0] = (struct iovec){(void *)heads[i], strlen(heads[i])};
        out_iov[i][1] = (struct iovec){(void *)tails[i], strlen(tails[i])};
        out[i].msg_hdr.msg_iov = out_iov[i];
        out[i].msg_hdr.msg_iovlen = 2;
    }
    int sent = sendmmsg(sv[0], out, 3, 0);
    printf("sendmmsg: %d, lengths %u %u %u\n", sent, out[0].msg_len, out[1].msg_len, out[2].msg_len);

    char bufs[4][32];
    struct iovec in_iov[4];
    struct mmsghdr in[4];
    memset(in, 0, sizeof in);
    memset(bufs, 0, sizeof bufs);
    for (int i = 0; i < 4; i++) {
        in_iov[i] = (struct iovec){bufs[i], sizeof bufs[i] - 1};
        in[i].msg_hdr.msg_iov = &in_iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
        in[i].msg_len = 12345;
    }
    int got = recvmmsg(sv[1], in, 4, MSG_DONTWAIT, NULL);
    printf("recvmmsg: %d\n", got);
    for (int i = 0; i < 4; i++)
        printf("  [%d] len %u flags %d: '%s'\n", i, in[i].msg_len, in[i].msg_hdr.msg_flags, bufs[i]);

    errno = 0;
    int r = sendmmsg(sv[0], (struct mmsghdr *)16, 2, 0);
    printf("sendmmsg of a bad vector: %d %s\n", r, strerrorname_np(errno));
    errno = 0;
    r = recvmmsg(sv[1], in, 4, MSG_DONTWAIT, NULL);
    printf("recvmmsg with nothing queued: %d %s\n", r, strerrorname_np(errno));
    r = sendmmsg(sv[0], out, 0, 0);
    printf("sendmmsg of none: %d\n", r);
    return 0;
}
