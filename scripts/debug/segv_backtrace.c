/* A C backtrace on SIGSEGV / SIGABRT / SIGBUS for processes that crash where no debugger is installed (the GPU
 * hosts have no gdb, and Python's faulthandler shows only Python frames):
 *   cc -shared -fPIC -O1 -o /tmp/segv_backtrace.so scripts/debug/segv_backtrace.c
 *   LD_PRELOAD=/tmp/segv_backtrace.so python3 ...      (frames to stderr, then the default action: core / exit)
 * Frames of hidden symbols print as library+offset: `addr2line -f -C -e LIB OFFSET` names them. */
#define _GNU_SOURCE
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void on_fatal(int sig) {
  void* frames[128];
  const int n = backtrace(frames, 128);
  static const char head[] = "segv_backtrace: fatal signal; C frames:\n";
  (void)!write(STDERR_FILENO, head, sizeof head - 1);
  backtrace_symbols_fd(frames, n, STDERR_FILENO); /* async-signal-safe enough: no malloc */
  signal(sig, SIG_DFL);
  raise(sig);
}

__attribute__((constructor)) static void install(void) {
  void* warm[1];
  backtrace(warm, 1); /* loads libgcc's unwinder now, not inside the handler */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal;
  sigaction(SIGSEGV, &sa, 0);
  sigaction(SIGBUS, &sa, 0);
  sigaction(SIGABRT, &sa, 0);
}
