/* The last step into a container: husk runs this ~1 KB static program from a
 * sealed memfd, and it execs the container's program. A container process
 * that reaches /proc/<pid>/exe (the CVE-2019-5736 attack: an image whose
 * binary is "#!/proc/self/exe") finds this sealed memfd, never the host's
 * husk binary, and husk never has to copy or re-exec itself.
 * argv: [path, argv0, argv1, ...]  ->  execve(path, argv + 1, envp). */
#include <asm/unistd.h>

typedef unsigned long size_t;

static long sys3(long n, long a, long b, long c) {
  long r;
#if defined(__x86_64__)
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  r = x0;
#else
#error "trampoline: unsupported architecture"
#endif
  return r;
}

static size_t len(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static void say(const char* s) { sys3(__NR_write, 2, (long)s, (long)len(s)); }

static void say_num(long v) {
  char buf[24];
  int i = sizeof buf;
  buf[--i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v && i > 0);
  say(buf + i);
}

static int is_self_exe(const char* p) {
  const char* s = "/proc/self/exe";
  while (*p && *p == *s) p++, s++;
  return *p == 0 && *s == 0;
}

__attribute__((noreturn, used)) void trampoline_main(long* sp) {
  long argc = sp[0];
  char** argv = (char**)(sp + 1);
  char** envp = argv + argc + 1;
  long err = 22; /* EINVAL */
  /* Run as an interpreter of itself (the attack above): refuse, do not loop. */
  if (argc >= 2 && !is_self_exe(argv[0])) err = -sys3(__NR_execve, (long)argv[0], (long)(argv + 1), (long)envp);
  say("husk: exec ");
  if (argc >= 1) say(argv[0]);
  say(": errno ");
  say_num(err);
  say("\n");
  sys3(__NR_exit_group, 127, 0, 0);
  for (;;) {
  }
}

#if defined(__x86_64__)
__asm__(".text\n.globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call trampoline_main\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl _start\n_start:\n  mov x0, sp\n  bl trampoline_main\n");
#endif
