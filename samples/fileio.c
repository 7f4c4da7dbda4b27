/* File system round trip inside a scratch directory created under argv[1]
 * (default: the current directory).  Prints only data that is the same for
 * every run: sizes, contents, checksums, sorted names and errno strings.  The
 * scratch directory is removed again at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define WORK "bttool_fileio.d"
#define DATA_LEN 10000

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s (errno %d: %s)\n", what, errno, strerror(errno));
        failures++;
    }
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 7u + (i >> 8) * 13u) & 0xff);
}

static void show_errno(const char *what, long rc)
{
    printf("%s -> %ld (%s)\n", what, rc, rc < 0 ? strerror(errno) : "ok");
}

static long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (long)st.st_size;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char *names[64];
    int n = 0;

    check(d != NULL, "opendir");
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char type = '?';
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        switch (de->d_type) {
        case DT_REG: type = 'f'; break;
        case DT_DIR: type = 'd'; break;
        case DT_LNK: type = 'l'; break;
        case DT_UNKNOWN: type = 'u'; break;
        }
        if (n < 64) {
            names[n] = malloc(strlen(de->d_name) + 3);
            sprintf(names[n], "%s %c", de->d_name, type);
            n++;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    printf("listing of %s: %d entries\n", path, n);
    for (int i = 0; i < n; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
}

int main(int argc, char **argv)
{
    static unsigned char data[DATA_LEN], back[DATA_LEN];
    const char *base = argc > 1 ? argv[1] : ".";
    char buf[256];
    struct stat st;
    long rc;
    int fd, fd2;

    if (chdir(base) != 0) {
        perror("chdir");
        return 2;
    }
    for (size_t i = 0; i < DATA_LEN; i++)
        data[i] = pattern(i);

    rc = mkdir(WORK, 0755);
    show_errno("mkdir " WORK, rc);
    rc = mkdir(WORK, 0755);
    show_errno("mkdir " WORK " again", rc);
    check(chdir(WORK) == 0, "chdir work");

    /* create, write, seek, read */
    fd = open("data.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd >= 0, "open data.bin");
    rc = write(fd, data, 4000);
    printf("write 4000 -> %ld\n", rc);
    rc = write(fd, data + 4000, DATA_LEN - 4000);
    printf("write %d -> %ld\n", DATA_LEN - 4000, rc);
    printf("lseek cur -> %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    printf("lseek set 1234 -> %ld\n", (long)lseek(fd, 1234, SEEK_SET));
    rc = read(fd, back, 100);
    printf("read 100 -> %ld, match=%d\n", rc, memcmp(back, data + 1234, 100) == 0);
    printf("lseek end -10 -> %ld\n", (long)lseek(fd, -10, SEEK_END));
    rc = read(fd, back, 100);
    printf("read at end-10 -> %ld:", rc);
    for (long i = 0; i < rc; i++)
        printf(" %02x", back[i]);
    printf("\n");
    rc = read(fd, back, 100);
    printf("read at eof -> %ld\n", rc);
    printf("lseek set 0 -> %ld\n", (long)lseek(fd, 0, SEEK_SET));
    rc = read(fd, back, DATA_LEN);
    printf("read all -> %ld, checksum %08x (expected %08x)\n", rc,
           checksum(back, (size_t)rc), checksum(data, DATA_LEN));

    /* pread/pwrite do not move the offset */
    rc = pwrite(fd, "HELLO", 5, 5000);
    printf("pwrite 5 at 5000 -> %ld\n", rc);
    memset(buf, 0, sizeof buf);
    rc = pread(fd, buf, 9, 4998);
    printf("pread 9 at 4998 -> %ld: %02x %02x [%.5s] %02x %02x\n", rc,
           (unsigned char)buf[0], (unsigned char)buf[1], buf + 2,
           (unsigned char)buf[7], (unsigned char)buf[8]);
    printf("offset after pread/pwrite -> %ld\n", (long)lseek(fd, 0, SEEK_CUR));

    /* fstat, ftruncate */
    check(fstat(fd, &st) == 0, "fstat");
    printf("fstat size=%ld regular=%d\n", (long)st.st_size, S_ISREG(st.st_mode));
    check(ftruncate(fd, 8000) == 0, "ftruncate");
    check(fstat(fd, &st) == 0, "fstat 2");
    printf("after ftruncate size=%ld\n", (long)st.st_size);

    /* dup shares the file offset */
    fd2 = dup(fd);
    check(fd2 >= 0, "dup");
    lseek(fd, 100, SEEK_SET);
    printf("offset seen through dup -> %ld\n", (long)lseek(fd2, 0, SEEK_CUR));
    close(fd2);

    /* readv / writev */
    {
        char a[4], b[6];
        struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
        struct iovec wv[3] = {{"one ", 4}, {"two ", 4}, {"three\n", 6}};
        lseek(fd, 0, SEEK_SET);
        rc = readv(fd, iov, 2);
        printf("readv -> %ld, checksum %08x %08x\n", rc, checksum((unsigned char *)a, 4),
               checksum((unsigned char *)b, 6));
        lseek(fd, 0, SEEK_END);
        rc = writev(fd, wv, 3);
        printf("writev -> %ld, size now %ld\n", rc, (long)lseek(fd, 0, SEEK_END));
    }

    /* mmap the file, modify through the mapping, read back with read(2) */
    {
        unsigned char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        check(m != MAP_FAILED, "mmap");
        if (m != MAP_FAILED) {
            printf("mmap byte[1234]=%02x expected %02x\n", m[1234], pattern(1234));
            memcpy(m + 10, "MAPPED", 6);
            check(msync(m, 8192, MS_SYNC) == 0, "msync");
            check(munmap(m, 8192) == 0, "munmap");
            memset(buf, 0, sizeof buf);
            rc = pread(fd, buf, 6, 10);
            printf("pread after mmap write -> %ld [%.6s]\n", rc, buf);
        }
    }
    check(close(fd) == 0, "close");
    rc = close(fd);
    show_errno("close again", rc);

    /* stat and errors */
    printf("stat data.bin size=%ld\n", file_size("data.bin"));
    rc = stat("missing.bin", &st);
    show_errno("stat missing.bin", rc);
    rc = open("missing.bin", O_RDONLY);
    show_errno("open missing.bin", rc);
    rc = open("data.bin", O_CREAT | O_EXCL | O_WRONLY, 0644);
    show_errno("open data.bin O_EXCL", rc);

    /* O_APPEND */
    fd = open("append.txt", O_CREAT | O_WRONLY | O_APPEND, 0644);
    check(fd >= 0, "open append");
    write(fd, "first\n", 6);
    lseek(fd, 0, SEEK_SET);
    write(fd, "second\n", 7);
    close(fd);
    printf("append.txt size=%ld\n", file_size("append.txt"));

    /* stdio round trip */
    {
        FILE *f = fopen("lines.txt", "w");
        check(f != NULL, "fopen w");
        for (int i = 0; i < 50; i++)
            fprintf(f, "line %d: %d squared is %d\n", i, i, i * i);
        check(fclose(f) == 0, "fclose w");
        f = fopen("lines.txt", "r");
        check(f != NULL, "fopen r");
        int count = 0;
        uint32_t h = 0;
        while (fgets(buf, sizeof buf, f) != NULL) {
            count++;
            h = h * 33u + checksum((unsigned char *)buf, strlen(buf));
            if (count == 7)
                printf("line 7 is: %s", buf);
        }
        fclose(f);
        printf("read %d lines, hash %08x, size %ld\n", count, h, file_size("lines.txt"));
    }

    /* rename, symlink, readlink, lstat */
    rc = rename("data.bin", "renamed.bin");
    show_errno("rename data.bin renamed.bin", rc);
    printf("size data.bin=%ld renamed.bin=%ld\n", file_size("data.bin"), file_size("renamed.bin"));
    rc = symlink("renamed.bin", "link");
    show_errno("symlink", rc);
    memset(buf, 0, sizeof buf);
    rc = readlink("link", buf, sizeof buf - 1);
    printf("readlink -> %ld [%s]\n", rc, rc > 0 ? buf : "");
    check(lstat("link", &st) == 0, "lstat");
    printf("lstat link: symlink=%d size=%ld\n", S_ISLNK(st.st_mode), (long)st.st_size);
    printf("stat through link size=%ld\n", file_size("link"));

    rc = mkdir("sub", 0700);
    show_errno("mkdir sub", rc);
    fd = open("sub/inner.txt", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    check(fd >= 0, "open sub/inner.txt");
    write(fd, "inner\n", 6);
    close(fd);
    rc = access("sub/inner.txt", R_OK | W_OK);
    show_errno("access sub/inner.txt", rc);
    rc = access("sub/none.txt", F_OK);
    show_errno("access sub/none.txt", rc);

    list_dir(".");
    list_dir("sub");

    /* cleanup with the expected errors along the way */
    rc = rmdir("sub");
    show_errno("rmdir non-empty sub", rc);
    rc = unlink("sub/inner.txt");
    show_errno("unlink sub/inner.txt", rc);
    rc = rmdir("sub");
    show_errno("rmdir sub", rc);
    rc = unlink("sub");
    show_errno("unlink sub again", rc);
    const char *files[] = {"link", "renamed.bin", "append.txt", "lines.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        rc = unlink(files[i]);
        snprintf(buf, sizeof buf, "unlink %s", files[i]);
        show_errno(buf, rc);
    }
    list_dir(".");
    check(chdir("..") == 0, "chdir ..");
    rc = rmdir(WORK);
    show_errno("rmdir " WORK, rc);
    printf("failures: %d\n", failures);
    return failures != 0;
}
