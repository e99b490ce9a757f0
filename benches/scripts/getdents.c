/* getdents.c DIR [FILE]: time reading DIR's entries with getdents64 (32 KiB buffer, as
   glibc's readdir) and FILE read whole, the floor of a changed re-run. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  static char buf[1 << 15], file[1 << 16];
  double t = now();
  int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
  long n = 0, calls = 0, r;
  while ((r = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    calls++;
    for (long off = 0; off < r;) { struct dirent64 *d = (void *)(buf + off); off += d->d_reclen; n++; }
  }
  close(fd);
  double a = now() - t;
  double b = 0; long bytes = 0;
  if (argc > 2) {
    t = now();
    int f = open(argv[2], O_RDONLY);
    while ((r = read(f, file, sizeof file)) > 0) bytes += r;
    close(f);
    b = now() - t;
  }
  printf("getdents64: %ld entries in %ld calls, %.1f ms; %s: %ld B in %.1f ms\n", n, calls, a * 1000, argc > 2 ? argv[2] : "-", bytes, b * 1000);
  return 0;
}
