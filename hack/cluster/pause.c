/* Minimal pod sandbox ("pause") process for the test-bed cluster.
 * Holds the pod's namespaces, exits on SIGINT/SIGTERM, reaps orphaned children
 * when it is PID 1 of a shared PID namespace. Built with gcc -static. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  struct sigaction term, child;
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("kubectl-build test-bed pause 1.0");
    return 0;
  }
  memset(&term, 0, sizeof term);
  term.sa_handler = on_term;
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGTERM, &term, NULL);
  memset(&child, 0, sizeof child);
  child.sa_handler = on_child;
  child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
  return 1;
}
