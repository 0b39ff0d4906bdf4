/* LD_PRELOAD shim for running LiteRT (and its cpuinfo library) under qemu-aarch64.
 *
 * qemu-user passes the host's /proc/cpuinfo through, so an aarch64 process on an x86
 * machine reads x86 fields, and cpuinfo's ARM parser crashes on them. This shim serves a
 * fixed Cortex-A76 description (one core: the benchmarks run single-threaded) for
 * open/openat/fopen of /proc/cpuinfo and leaves every other path to libc.
 * Build: aarch64-linux-gnu-gcc -shared -fPIC -O2 cpuinfo_shim.c -o cpuinfo_shim.so -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Cortex-A76: implementer 0x41 (Arm), part 0xd0b; features as the kernel prints them for
 * an ARMv8.2-A core with dotprod (asimddp) and without i8mm. */
static const char CPUINFO[] =
    "processor\t: 0\n"
    "BogoMIPS\t: 50.00\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
    "asimdrdm lrcpc dcpop asimddp\n"
    "CPU implementer\t: 0x41\n"
    "CPU architecture: 8\n"
    "CPU variant\t: 0x4\n"
    "CPU part\t: 0xd0b\n"
    "CPU revision\t: 1\n"
    "\n";

static int is_cpuinfo(const char *path)
{
    return path != NULL && strcmp(path, "/proc/cpuinfo") == 0;
}

/* An anonymous in-memory file holding CPUINFO, positioned at its start. */
static int cpuinfo_fd(void)
{
    int fd = memfd_create("cpuinfo", 0);
    if (fd < 0) {
        return -1;
    }
    if (write(fd, CPUINFO, sizeof CPUINFO - 1) != (ssize_t)(sizeof CPUINFO - 1)) {
        close(fd);
        return -1;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    va_list ap;
    mode_t mode;
    if (is_cpuinfo(path)) {
        return cpuinfo_fd();
    }
    if (real == NULL) {
        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    }
    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return real(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    va_list ap;
    mode_t mode;
    if (is_cpuinfo(path)) {
        return cpuinfo_fd();
    }
    if (real == NULL) {
        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
    }
    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return real(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    static int (*real)(int, const char *, int, ...);
    va_list ap;
    mode_t mode;
    if (is_cpuinfo(path)) {
        return cpuinfo_fd();
    }
    if (real == NULL) {
        real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    }
    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return real(dirfd, path, flags, mode);
}

FILE *fopen(const char *path, const char *how)
{
    static FILE *(*real)(const char *, const char *);
    if (is_cpuinfo(path)) {
        int fd = cpuinfo_fd();
        return fd < 0 ? NULL : fdopen(fd, "r");
    }
    if (real == NULL) {
        real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
    }
    return real(path, how);
}

FILE *fopen64(const char *path, const char *how)
{
    static FILE *(*real)(const char *, const char *);
    if (is_cpuinfo(path)) {
        int fd = cpuinfo_fd();
        return fd < 0 ? NULL : fdopen(fd, "r");
    }
    if (real == NULL) {
        real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen64");
    }
    return real(path, how);
}
