/* ipc: the descriptor-based system calls that servers, shells and language
 * runtimes use beyond files: socketpair with sendmsg/recvmsg passing a
 * descriptor (SCM_RIGHTS), loopback TCP (bind, listen, getsockname,
 * connect, accept4, getpeername, shutdown) and UDP (sendto, recvfrom),
 * socket options, epoll, eventfd, timerfd, memfd_create, splice and tee,
 * inotify.  Every line it prints is the same on every run, natively and
 * under bttool. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHECK(what, expr) do { long _r = (long)(expr); \
        printf("%s: %s\n", what, _r < 0 ? strerrorname_np(errno) : "ok"); } while (0)

static void pass_descriptor(void) {
    int sv[2], p[2];
    CHECK("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    CHECK("pipe", pipe(p));
    write(p[1], "through a passed pipe", 21);
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    printf("sendmsg: %ld\n", (long)sendmsg(sv[0], &m, 0));
    close(p[0]);
    char got = 0, rctl[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec riov = {&got, 1};
    struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rctl, .msg_controllen = sizeof rctl};
    long n = recvmsg(sv[1], &r, 0);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&r);
    int fd = -1;
    if (rc && rc->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(rc), sizeof(int));
    char buf[32] = {0};
    printf("recvmsg: %ld '%c' controllen %zu flags %d, passed fd reads '%.*s'\n", n, got,
           (size_t)r.msg_controllen, r.msg_flags, (int)read(fd, buf, sizeof buf - 1), buf);
    close(fd);
    close(p[1]);
    CHECK("shutdown", shutdown(sv[0], SHUT_WR));
    printf("read after peer shutdown: %ld\n", (long)read(sv[1], buf, 1));
    close(sv[0]);
    close(sv[1]);
}

static void tcp(void) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, type = 0;
    socklen_t tl = sizeof type;
    CHECK("setsockopt SO_REUSEADDR", setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    CHECK("getsockopt SO_TYPE", getsockopt(ls, SOL_SOCKET, SO_TYPE, &type, &tl));
    printf("  type %d len %u\n", type, tl);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK("bind", bind(ls, (struct sockaddr *)&a, sizeof a));
    CHECK("listen", listen(ls, 4));
    struct sockaddr_in bound;
    socklen_t bl = sizeof bound;
    CHECK("getsockname", getsockname(ls, (struct sockaddr *)&bound, &bl));
    int cs = socket(AF_INET, SOCK_STREAM, 0);
    CHECK("connect", connect(cs, (struct sockaddr *)&bound, sizeof bound));
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int as = accept4(ls, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    printf("accept4: %s len %u family %d loopback %d\n", as < 0 ? strerrorname_np(errno) : "ok", pl,
           peer.sin_family, peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    struct sockaddr_in me, them;
    socklen_t ml = sizeof me, tl2 = sizeof them;
    getsockname(cs, (struct sockaddr *)&me, &ml);
    getpeername(as, (struct sockaddr *)&them, &tl2);
    printf("getpeername matches the client's name: %d\n", me.sin_port == them.sin_port);
    write(cs, "hello over tcp", 14);
    char buf[32] = {0};
    printf("server read: %ld '%s'\n", (long)read(as, buf, sizeof buf - 1), buf);
    socklen_t tiny = 2;
    CHECK("getsockname short length", getsockname(ls, (struct sockaddr *)&bound, &tiny));
    printf("  length now %u\n", tiny);
    CHECK("getsockname unmapped length", getsockname(ls, (struct sockaddr *)&bound, (socklen_t *)8));
    close(cs);
    close(as);
    close(ls);
}

static void udp(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    printf("sendto: %ld\n", (long)sendto(s, "datagram", 8, 0, (struct sockaddr *)&a, sizeof a));
    char buf[16] = {0};
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    long n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    printf("recvfrom: %ld '%s' from self %d\n", n, buf, from.sin_port == a.sin_port);
    close(s);
}

static void events(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC), p[2];
    pipe(p);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
    CHECK("epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    struct epoll_event out[4];
    printf("epoll_wait empty: %d\n", epoll_wait(ep, out, 4, 0));
    write(p[1], "e", 1);
    int n = epoll_wait(ep, out, 4, 1000);
    printf("epoll_wait: %d events %#x data %#llx\n", n, out[0].events, (unsigned long long)out[0].data.u64);
    n = epoll_pwait(ep, out, 4, 0, NULL);
    printf("epoll_pwait: %d\n", n);
    CHECK("epoll_ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    CHECK("epoll_ctl bad fd", epoll_ctl(ep, EPOLL_CTL_ADD, 999, &ev));
    close(ep);

    int efd = eventfd(3, EFD_CLOEXEC);
    uint64_t v = 4;
    write(efd, &v, 8);
    read(efd, &v, 8);
    printf("eventfd: %llu\n", (unsigned long long)v);
    close(efd);

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {.it_value = {0, 1000000}}, cur;
    CHECK("timerfd_settime", timerfd_settime(tfd, 0, &its, NULL));
    read(tfd, &v, 8);
    printf("timerfd expirations: %llu\n", (unsigned long long)v);
    CHECK("timerfd_gettime", timerfd_gettime(tfd, &cur));
    printf("  disarmed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    close(tfd);
    close(p[0]);
    close(p[1]);
}

static void files(void) {
    int m = memfd_create("ipc-sample", MFD_CLOEXEC);
    write(m, "in a memory file", 16);
    struct stat st;
    fstat(m, &st);
    printf("memfd: size %lld\n", (long long)st.st_size);
    int p[2], q[2];
    pipe(p);
    pipe(q);
    loff_t off = 3;
    printf("splice: %ld\n", (long)splice(m, &off, p[1], NULL, 10, 0));
    printf("  offset now %lld\n", (long long)off);
    printf("tee: %ld\n", (long)tee(p[0], q[1], 10, 0));
    char a[16] = {0}, b[16] = {0};
    read(p[0], a, 10);
    read(q[0], b, 10);
    printf("  '%s' '%s'\n", a, b);
    CHECK("fadvise", posix_fadvise(m, 0, 0, POSIX_FADV_SEQUENTIAL) == 0 ? 0 : -1);
    close(m);

    char dir[] = "/tmp/ipc-sample-XXXXXX";
    if (!mkdtemp(dir))
        return;
    int in = inotify_init1(IN_CLOEXEC);
    int w = inotify_add_watch(in, dir, IN_CREATE);
    printf("inotify_add_watch: %d\n", w);
    char path[64];
    snprintf(path, sizeof path, "%s/made", dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    char evbuf[256] __attribute__((aligned(8)));
    long n = read(in, evbuf, sizeof evbuf);
    struct inotify_event *e = (struct inotify_event *)evbuf;
    printf("inotify: %d mask %#x name %s\n", n > 0, e->mask, e->name);
    CHECK("inotify_rm_watch", inotify_rm_watch(in, w));
    close(in);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pass_descriptor();
    tcp();
    udp();
    events();
    files();
    return 0;
}
