/* Worker processes: the master's supervision (no libuv while it runs: it
 * waits in poll(2) on a signalfd and the workers' control sockets), the
 * start of a worker (fork and uv_loop_fork, or exec for fresh code), the
 * worker's end of the control socket, and inherited listeners. */
#define _GNU_SOURCE /* dup3, signalfd, sched_getaffinity, close_range */
#include "workers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/filter.h>
#include <sys/signalfd.h>
#endif

#include "timer.h"
#include "uvloop.h"

extern char **environ;

#define STABLE_AFTER 5.0   /* a worker that lived this long is restarted at once */
#define BACKOFF_FIRST 0.1  /* then 0.2, 0.4, ... while it keeps dying young */
#define BACKOFF_MAX 5.0
#define KILL_SLACK 2.0     /* a draining worker still there at grace + this is killed */
#define QUIT_WAIT 2.0      /* after "stop at once", the same */
#define READY_TIMEOUT 60.0 /* a new generation not ready by then is given up */

/* --- inherited listeners (systemd's protocol) --- */

static struct {
  int parsed;
  int next, end;  /* fds next..end-1 are not taken yet */
} inherited;

static void inherited_parse(void) {
  if (inherited.parsed) return;
  inherited.parsed = 1;
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  if (pid && fds) {
    char *e1, *e2;
    long p = strtol(pid, &e1, 10), n = strtol(fds, &e2, 10);
    if (!*e1 && !*e2 && p == (long)getpid() && n > 0 && n < 4096) {
      inherited.next = 3;
      inherited.end = 3 + (int)n;
    }
  }
  /* as sd_listen_fds(1): processes this one starts must not see them */
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
}

int lh_inherited_next(void) {
  inherited_parse();
  return inherited.next < inherited.end ? inherited.next++ : -1;
}

int lh_cpu_count(void) {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

#ifndef __linux__
int lh_workers_run(lh_loop_t *l, lh_server_t *const *srv, int nsrv, const lh_workers_opts_t *o,
                   lh_worker_info_t *w) {
  (void)l, (void)srv, (void)nsrv, (void)o, (void)w;
  return UV_ENOSYS;
}
#else

/* --- the master --- */

/* The signals the master waits for, in its signalfd: blocked in the
 * master's thread. Another thread of the process (libuv's thread pool,
 * started by a log write or a DNS look-up before lhyper.workers) may have
 * them unblocked, and the kernel hands a process' signal to any thread
 * that does not block it: SIGHUP's or SIGTERM's default action would end
 * the master, a program's handler would take it from the signalfd. While
 * the master supervises, their action sends them on to the master's
 * thread, where they wait for the signalfd. */
static const int master_sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};
#define NSIGS (sizeof master_sigs / sizeof *master_sigs)
static pid_t master_pid, master_tid; /* set while a master supervises */

static void forward_cb(int sig) {
  int e = errno;
  syscall(SYS_tgkill, master_pid, master_tid, sig); /* async-signal-safe */
  errno = e;
}

enum { W_STARTING, W_SERVING, W_RETIRING, W_STOPPING };

typedef struct {
  pid_t pid;
  int ctl;        /* the master's end of the control socket; -1 after EOF */
  int slot;       /* 0..n-1 */
  int gen;
  int state;      /* W_*: STARTING until it says it serves */
  double started;
  double kill_at; /* KILL when still there at this time; 0 none */
} wproc_t;

typedef struct {
  lh_loop_t *loop;
  lh_server_t *const *srv;
  int nsrv;
  lh_workers_opts_t o;
  int *socks;          /* the master's copy of every listener: socks[s * nsocks + k] */
  int nsocks;          /* per server: n, or 1 when shared */
  int sfd;             /* signalfd */
  sigset_t oldmask;    /* the mask before; workers get it back */
  int signals_taken;   /* signals_take ran: the forwarding actions are in place */
  struct sigaction oldact[NSIGS]; /* the actions before, for master_sigs; the same */
  wproc_t *w;          /* live workers (not reaped yet) */
  int nw, capw;
  double *restart_at;  /* per slot: a restart is due then, 0 none */
  double *backoff;     /* per slot: the delay before the next quick restart */
  int cur_gen;         /* the generation serving */
  int next_gen;        /* > cur_gen while a reload is under way */
  int last_gen;        /* the highest ever started */
  double reload_deadline;
  int reload_again;    /* SIGHUP during a reload: another one after it */
  int stopping;        /* 0; 1 draining; 2 stopping at once */
  int can_steer;       /* reuseport groups of our own making: their order is the slots' */
  int steering;        /* a program steers new connections to the slots in `steered` */
  unsigned char *steered; /* per slot: 1 when a worker serves it */
  int threaded;        /* the process ran other threads when the master began
                        * (libuv's pool, most likely): set once */
  pid_t me;
} master_t;

/* the threads of the process, this one included (/proc/self/task) */
static int process_threads(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return 1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* A forked worker has none of the master's pool threads, yet libuv joins
 * the threads its pool started when the library is unloaded at exit
 * (uv_library_shutdown): a crash, or a hang. After a fork libuv starts its
 * pool afresh on the next work queued (its pthread_atfork handler resets
 * it); a no-op queued at once makes the threads joined at exit the
 * worker's own. 0 or a libuv error */
static void pool_noop_cb(uv_work_t *w) { (void)w; }
static void pool_noop_done_cb(uv_work_t *w, int status) {
  (void)status;
  free(w);
}

static int pool_restart(uv_loop_t *loop) {
  uv_work_t *w = malloc(sizeof *w);
  if (!w) return UV_ENOMEM;
  int r = uv_queue_work(loop, w, pool_noop_cb, pool_noop_done_cb);
  if (r) free(w);
  return r;
}

/* the actions the program had for master_sigs; async-signal-safe */
static void actions_restore(master_t *m) {
  for (size_t i = 0; i < NSIGS; i++) sigaction(master_sigs[i], &m->oldact[i], NULL);
}

/* while the master supervises, master_sigs come to its thread's signalfd */
static int signals_take(master_t *m) {
  sigset_t mask;
  sigemptyset(&mask);
  for (size_t i = 0; i < NSIGS; i++) sigaddset(&mask, master_sigs[i]);
  if (sigprocmask(SIG_BLOCK, &mask, &m->oldmask) != 0) return -errno;
  m->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (m->sfd < 0) {
    int e = -errno;
    sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
    return e;
  }
  master_pid = getpid();
  master_tid = (pid_t)syscall(SYS_gettid);
  struct sigaction fwd;
  memset(&fwd, 0, sizeof fwd);
  fwd.sa_handler = forward_cb;
  fwd.sa_flags = SA_RESTART;
  sigfillset(&fwd.sa_mask);
  for (size_t i = 0; i < NSIGS; i++) sigaction(master_sigs[i], &fwd, &m->oldact[i]);
  m->signals_taken = 1;
  return 0;
}

/* the program's actions and mask again: what was blocked and not read
 * stays pending, taken by the program's own handlers, or by the default
 * action, once unblocked */
static void signals_give_back(master_t *m) {
  if (!m->signals_taken) return;
  m->signals_taken = 0;
  close(m->sfd);
  m->sfd = -1;
  actions_restore(m);
  sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(master_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(master_t *m, const char *fmt, ...) {
  char line[512];
  int k = snprintf(line, sizeof line, "lhyper master %d: ", (int)m->me);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", line);
  fflush(stderr);
}

static void tell(wproc_t *w, int cmd) {
  char c = (char)cmd;
  if (w->ctl >= 0) (void)!send(w->ctl, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void close_socks(master_t *m) {
  for (int i = 0; m->socks && i < m->nsrv * m->nsocks; i++) {
    if (m->socks[i] >= 0) close(m->socks[i]);
    m->socks[i] = -1;
  }
}

static void master_free(master_t *m) {
  free(m->socks);
  free(m->w);
  free(m->restart_at);
  free(m->backoff);
  free(m->steered);
  m->socks = NULL;
  m->w = NULL;
  m->restart_at = m->backoff = NULL;
  m->steered = NULL;
}

/* every fd of the master's that a worker must not keep: the others'
 * control sockets, the signalfd and (after its own are in place) the
 * listeners */
static void child_close_master_fds(master_t *m) {
  close(m->sfd);
  for (int i = 0; i < m->nw; i++)
    if (m->w[i].ctl >= 0) close(m->w[i].ctl);
}

/* signals a worker does not take from the terminal or the master: INT and
 * HUP go to the master (which tells the workers), USR1 and USR2 are
 * forwarded and harmless unless the program watches them */
static void child_signals(master_t *m) {
  actions_restore(m);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
}

/* the forked child becomes worker `slot`: the state it shares with the
 * master (memory, the loop, the servers) is its own copy now; the loop is
 * made whole again as libuv asks (uv_loop_fork), and each server's
 * descriptor becomes this worker's listener */
static int child_become(master_t *m, int slot, int gen, int ctl, lh_worker_info_t *info) {
  child_close_master_fds(m);
  int k = m->nsocks > 1 ? slot : 0;
  int bad = 0;
  for (int s = 0; s < m->nsrv; s++) {
    int fd = lh_server_fd(m->srv[s]);
    if (fd < 0 || dup3(m->socks[s * m->nsocks + k], fd, O_CLOEXEC) < 0) bad = 1;
  }
  close_socks(m);
  child_signals(m);
  master_free(m);
  if (bad || uv_loop_fork(&m->loop->uv) != 0 || (m->threaded && pool_restart(&m->loop->uv) != 0)) {
    fprintf(stderr, "lhyper worker %d: cannot take over the master's loop\n", (int)getpid());
    _exit(70);
  }
  for (int s = 0; s < m->nsrv; s++) lh_server_hold(m->srv[s], 0);
  info->id = slot + 1;
  info->generation = gen;
  info->ctl = ctl;
  return 1;
}

/* the exec'd program's environment: ours without the variables this sets */
typedef struct {
  char **envp;
  char fds[32], worker[64], pid[32];
} exec_env_t;

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int exec_env_make(exec_env_t *e, int nsrv, int slot, int gen) {
  size_t n = 0;
  while (environ[n]) n++;
  e->envp = malloc((n + 4) * sizeof *e->envp);
  if (!e->envp) return UV_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < n; i++)
    if (!starts(environ[i], "LISTEN_PID=") && !starts(environ[i], "LISTEN_FDS=") &&
        !starts(environ[i], "LISTEN_FDNAMES=") && !starts(environ[i], "LHYPER_WORKER="))
      e->envp[j++] = environ[i];
  snprintf(e->fds, sizeof e->fds, "LISTEN_FDS=%d", nsrv);
  snprintf(e->worker, sizeof e->worker, "LHYPER_WORKER=%d %d %d", slot + 1, gen, 3 + nsrv);
  strcpy(e->pid, "LISTEN_PID=");
  e->envp[j++] = e->fds;
  e->envp[j++] = e->worker;
  e->envp[j++] = e->pid;
  e->envp[j] = NULL;
  return 0;
}

/* in the child, async-signal-safe calls only: the listeners go to fds
 * 3.., the control socket after them, then exec */
static void child_exec(master_t *m, exec_env_t *e, int slot, int ctl) {
  int k = m->nsocks > 1 ? slot : 0, top = 3 + m->nsrv + 1;
  int tmp[m->nsrv + 1];
  for (int s = 0; s <= m->nsrv; s++) {
    int from = s < m->nsrv ? m->socks[s * m->nsocks + k] : ctl;
    tmp[s] = fcntl(from, F_DUPFD_CLOEXEC, top);
    if (tmp[s] < 0) _exit(71);
  }
  for (int s = 0; s <= m->nsrv; s++)
    if (dup2(tmp[s], 3 + s) < 0) _exit(71);
#ifdef SYS_close_range
  /* descriptors the program opened without close-on-exec stay here */
  syscall(SYS_close_range, (unsigned)top, ~0u, 0u);
#endif
  child_signals(m);
  char digits[16];
  int nd = 0;
  for (unsigned long p = (unsigned long)getpid(); p; p /= 10) digits[nd++] = (char)('0' + p % 10);
  char *d = e->pid + strlen("LISTEN_PID=");
  while (nd) *d++ = digits[--nd];
  *d = 0;
  execve(m->o.exe, m->o.argv, e->envp);
  _exit(127);
}

/* starts a worker for slot in generation gen: forked from this state for
 * generation 0, exec'd (fresh code) after a reload. 1 in the child (it
 * is a worker now), 0 in the master, < 0 on failure */
static int spawn(master_t *m, int slot, int gen, lh_worker_info_t *info) {
  int use_exec = gen > 0;
  if (use_exec && !m->o.exe) return UV_ENOTSUP;
  if (m->nw == m->capw) {
    int cap = m->capw ? m->capw * 2 : 8;
    wproc_t *w = realloc(m->w, (size_t)cap * sizeof *w);
    if (!w) return UV_ENOMEM;
    m->w = w;
    m->capw = cap;
  }
  exec_env_t env = {0};
  if (use_exec && exec_env_make(&env, m->nsrv, slot, gen)) return UV_ENOMEM;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    free(env.envp);
    return -errno;
  }
  fflush(NULL); /* or the child writes what the program had buffered again */
  pid_t pid = fork();
  if (pid < 0) {
    int e = -errno;
    close(sv[0]);
    close(sv[1]);
    free(env.envp);
    return e;
  }
  if (pid == 0) {
    if (use_exec) child_exec(m, &env, slot, sv[1]);
    free(env.envp);
    close(sv[0]);
    return child_become(m, slot, gen, sv[1], info);
  }
  free(env.envp);
  close(sv[1]);
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  wproc_t *w = &m->w[m->nw++];
  memset(w, 0, sizeof *w);
  w->pid = pid;
  w->ctl = sv[0];
  w->slot = slot;
  w->gen = gen;
  w->state = W_STARTING;
  w->started = mono_now();
  if (gen > m->last_gen) m->last_gen = gen;
  say(m, "worker %d started (pid %d, generation %d%s)", slot + 1, (int)pid, gen,
      use_exec ? ", fresh code" : "");
  return 0;
}

static wproc_t *find_pid(master_t *m, pid_t pid) {
  for (int i = 0; i < m->nw; i++)
    if (m->w[i].pid == pid) return &m->w[i];
  return NULL;
}

static void kill_by(wproc_t *w, double at) {
  if (!w->kill_at || at < w->kill_at) w->kill_at = at;
}

/* a reload that cannot finish: its workers stop, the serving ones stay */
static void reload_abort(master_t *m, const char *why) {
  say(m, "reload failed: %s; generation %d keeps serving", why, m->cur_gen);
  double now = mono_now();
  for (int i = 0; i < m->nw; i++) {
    wproc_t *w = &m->w[i];
    if (w->gen != m->next_gen || w->state == W_STOPPING || w->state == W_RETIRING) continue;
    /* one that serves already finishes what it took */
    int serving = w->state == W_SERVING;
    tell(w, serving ? LH_WORKER_RETIRE : LH_WORKER_QUIT);
    w->state = serving ? W_RETIRING : W_STOPPING;
    kill_by(w, now + (serving ? m->o.grace + KILL_SLACK : QUIT_WAIT));
  }
  m->next_gen = m->cur_gen;
  m->reload_again = 0;
}

static int slot_has(master_t *m, int slot, int gen, int serving) {
  for (int i = 0; i < m->nw; i++) {
    wproc_t *w = &m->w[i];
    if (w->slot == slot && (gen < 0 || w->gen == gen) && (serving ? w->state == W_SERVING
                                                     : (w->state == W_STARTING || w->state == W_SERVING)))
      return 1;
  }
  return 0;
}

/* Steering (reuseport): while a slot has no worker serving (dead, waiting
 * for its restart, still starting), new connections go to the slots that
 * have one, through a classic BPF program on the SO_REUSEPORT group: a
 * random pick among them, returned as the socket's index in the group,
 * which is the slot (the master made the sockets in slot order and holds
 * them all, so none leaves the group before shutdown). With every slot
 * served, or none, the program goes and the kernel hashes as usual.
 * Connections already waiting in a slot's backlog stay for its next worker. */
static void steer(master_t *m) {
  if (!m->can_steer) return;
  int n = m->o.n, nlive = 0, changed = 0;
  for (int slot = 0; slot < n; slot++) {
    unsigned char live = !m->stopping && slot_has(m, slot, -1, 1);
    if (live != m->steered[slot]) changed = 1;
    m->steered[slot] = live;
    nlive += live;
  }
  if (!changed && m->steering == (nlive > 0 && nlive < n)) return;
  if (nlive == 0 || nlive == n) {
    if (!m->steering) return;
    /* an index past the group's end makes the kernel hash as usual,
     * where SO_DETACH_REUSEPORT_BPF (Linux 5.3) is missing */
    struct sock_filter none[] = {BPF_STMT(BPF_RET | BPF_K, 0xffffffffu)};
    struct sock_fprog fallback;
    memset(&fallback, 0, sizeof fallback); /* the padding goes to the kernel too */
    fallback.len = 1;
    fallback.filter = none;
    int zero = 0;
    for (int s = 0; s < m->nsrv; s++) {
      int fd = m->socks[s * m->nsocks];
      if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof zero) != 0)
        setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fallback, sizeof fallback);
    }
    m->steering = 0;
    return;
  }
  struct sock_filter code[2 * n + 3];
  int k = 0;
  code[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM));
  code[k++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)nlive);
  for (int slot = 0, i = 0; slot < n; slot++) {
    if (!m->steered[slot]) continue;
    code[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)i++, 0, 1);
    code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (uint32_t)slot);
  }
  code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
  struct sock_fprog prog;
  memset(&prog, 0, sizeof prog); /* the padding goes to the kernel too */
  prog.len = (unsigned short)k;
  prog.filter = code;
  for (int s = 0; s < m->nsrv; s++) {
    int fd = m->socks[s * m->nsocks];
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
  }
  m->steering = 1;
}

static int reload_start(master_t *m, lh_worker_info_t *info) {
  if (!m->o.exe) {
    say(m, "SIGHUP: no reload (the program's command line is unknown)");
    return 0;
  }
  if (m->next_gen > m->cur_gen) {
    m->reload_again = 1;
    return 0;
  }
  m->next_gen = m->last_gen + 1;
  m->reload_deadline = mono_now() + READY_TIMEOUT;
  say(m, "SIGHUP: starting generation %d", m->next_gen);
  for (int slot = 0; slot < m->o.n; slot++) {
    int r = spawn(m, slot, m->next_gen, info);
    if (r == 1) return 1;
    if (r < 0) {
      char why[128];
      snprintf(why, sizeof why, "cannot start a worker: %s", uv_strerror(r));
      reload_abort(m, why);
      return 0;
    }
  }
  return 0;
}

/* every slot has a new worker serving: the old ones retire */
static int reload_check(master_t *m, lh_worker_info_t *info) {
  if (m->next_gen <= m->cur_gen) return 0;
  for (int slot = 0; slot < m->o.n; slot++)
    if (!slot_has(m, slot, m->next_gen, 1)) return 0;
  double now = mono_now();
  for (int i = 0; i < m->nw; i++) {
    wproc_t *w = &m->w[i];
    if (w->gen < m->next_gen && (w->state == W_STARTING || w->state == W_SERVING)) {
      tell(w, LH_WORKER_RETIRE);
      w->state = W_RETIRING;
      kill_by(w, now + m->o.grace + KILL_SLACK);
    }
  }
  for (int slot = 0; slot < m->o.n; slot++) m->restart_at[slot] = 0;
  m->cur_gen = m->next_gen;
  say(m, "generation %d serves; generation %d drains", m->cur_gen, m->cur_gen - 1);
  if (m->reload_again) {
    m->reload_again = 0;
    return reload_start(m, info);
  }
  return 0;
}

static void describe_exit(char *buf, size_t len, int status) {
  if (WIFSIGNALED(status))
    snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static void on_exit_of(master_t *m, wproc_t *w, int status) {
  char how[96];
  describe_exit(how, sizeof how, status);
  double now = mono_now(), lived = now - w->started;
  wproc_t dead = *w;
  if (dead.ctl >= 0) close(dead.ctl);
  *w = m->w[--m->nw];
  if (m->stopping || dead.state == W_RETIRING || dead.state == W_STOPPING) {
    say(m, "worker %d (pid %d, generation %d) %s", dead.slot + 1, (int)dead.pid, dead.gen, how);
    return;
  }
  if (dead.gen > m->cur_gen) {
    say(m, "worker %d (pid %d, generation %d) %s before it served", dead.slot + 1, (int)dead.pid,
        dead.gen, how);
    char why[160];
    snprintf(why, sizeof why, "a worker of generation %d %s", dead.gen, how);
    reload_abort(m, why);
    return;
  }
  /* one of the serving generation: back-off when it dies young */
  double *b = &m->backoff[dead.slot];
  if (lived >= STABLE_AFTER) *b = 0;
  else *b = *b == 0 ? BACKOFF_FIRST : (*b * 2 > BACKOFF_MAX ? BACKOFF_MAX : *b * 2);
  m->restart_at[dead.slot] = now + *b;
  if (*b)
    say(m, "worker %d (pid %d) %s after %.1f s; restarting in %.1f s", dead.slot + 1, (int)dead.pid,
        how, lived, *b);
  else
    say(m, "worker %d (pid %d) %s after %.1f s; restarting now", dead.slot + 1, (int)dead.pid, how, lived);
}

static void reap(master_t *m) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    wproc_t *w = find_pid(m, pid);
    if (w) on_exit_of(m, w, status);
  }
}

static void shutdown_start(master_t *m, int at_once) {
  double now = mono_now();
  int first = !m->stopping;
  m->stopping = at_once ? 2 : 1;
  if (first) {
    steer(m); /* the kernel's own choice while the listeners go */
    close_socks(m); /* the workers hold the listeners from here */
  }
  for (int slot = 0; slot < m->o.n; slot++) m->restart_at[slot] = 0;
  for (int i = 0; i < m->nw; i++) {
    wproc_t *w = &m->w[i];
    if (at_once) {
      tell(w, LH_WORKER_QUIT);
      kill_by(w, now + QUIT_WAIT);
    } else if (w->state != W_RETIRING) {
      tell(w, LH_WORKER_DRAIN);
      kill_by(w, now + m->o.grace + KILL_SLACK);
    }
    w->state = at_once ? W_STOPPING : (w->state == W_RETIRING ? W_RETIRING : W_STOPPING);
  }
}

static void on_ctl(master_t *m, int i, lh_worker_info_t *info, int *child) {
  wproc_t *w = &m->w[i];
  char buf[64];
  ssize_t r = recv(w->ctl, buf, sizeof buf, 0);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    close(w->ctl); /* gone: its exit comes with SIGCHLD */
    w->ctl = -1;
    return;
  }
  for (ssize_t k = 0; k < r; k++)
    if (buf[k] == 'r' && w->state == W_STARTING) {
      w->state = W_SERVING;
      if (m->stopping) {
        tell(w, m->stopping == 2 ? LH_WORKER_QUIT : LH_WORKER_DRAIN);
        w->state = W_STOPPING;
      }
    }
  if (!m->stopping && reload_check(m, info) == 1) *child = 1;
}

static int on_signal(master_t *m, int sig, lh_worker_info_t *info) {
  switch (sig) {
    case SIGCHLD:
      reap(m);
      return 0;
    case SIGHUP:
      if (m->stopping) return 0;
      return reload_start(m, info);
    /* each line is written once the workers were told */
    case SIGTERM:
    case SIGINT:
      if (m->stopping) {
        int again = m->stopping == 1;
        shutdown_start(m, 1);
        if (again) say(m, "%s again: stopping now", strsignal(sig));
      } else {
        shutdown_start(m, 0);
        say(m, "%s: draining (grace %g s)", strsignal(sig), m->o.grace);
      }
      return 0;
    case SIGQUIT:
      shutdown_start(m, 1);
      say(m, "%s: stopping now", strsignal(sig));
      return 0;
    default: /* SIGUSR1, SIGUSR2 */
      for (int i = 0; i < m->nw; i++) kill(m->w[i].pid, sig);
      return 0;
  }
}

/* timed work: restarts, kills, the reload deadline; the next due time */
static int on_time(master_t *m, double *next, lh_worker_info_t *info) {
  double now = mono_now();
  *next = 0;
#define DUE(t) ((t) && (!*next || (t) < *next) ? (*next = (t)) : 0)
  for (int slot = 0; slot < m->o.n; slot++) {
    double at = m->restart_at[slot];
    if (!at) continue;
    if (at > now) {
      DUE(at);
      continue;
    }
    m->restart_at[slot] = 0;
    if (slot_has(m, slot, m->cur_gen, 0)) continue;
    int r = spawn(m, slot, m->cur_gen, info);
    if (r == 1) return 1;
    if (r < 0) {
      say(m, "cannot start worker %d: %s", slot + 1, uv_strerror(r));
      m->restart_at[slot] = now + BACKOFF_MAX;
      DUE(m->restart_at[slot]);
    }
  }
  for (int i = 0; i < m->nw; i++) {
    wproc_t *w = &m->w[i];
    if (!w->kill_at) continue;
    if (w->kill_at <= now) {
      say(m, "worker %d (pid %d) still running: killed", w->slot + 1, (int)w->pid);
      kill(w->pid, SIGKILL);
      w->kill_at = 0;
    } else {
      DUE(w->kill_at);
    }
  }
  if (m->next_gen > m->cur_gen && !m->stopping) {
    if (m->reload_deadline <= now) {
      char why[96];
      snprintf(why, sizeof why, "generation %d not serving after %g s", m->next_gen, READY_TIMEOUT);
      reload_abort(m, why);
    } else {
      DUE(m->reload_deadline);
    }
  }
#undef DUE
  return 0;
}

/* the supervision loop; 1 when this process became a worker */
static int supervise(master_t *m, lh_worker_info_t *info) {
  struct pollfd *pf = NULL;
  int cap = 0, child = 0;
  while (!m->stopping || m->nw > 0) {
    double next;
    if (on_time(m, &next, info) == 1) {
      child = 1;
      break;
    }
    steer(m);
    if (m->nw + 1 > cap) {
      cap = (m->nw + 1) * 2;
      struct pollfd *p = realloc(pf, (size_t)cap * sizeof *p);
      if (!p) {
        sleep(1); /* no memory for a poll set: try again later */
        continue;
      }
      pf = p;
    }
    int np = 0;
    pf[np++] = (struct pollfd){.fd = m->sfd, .events = POLLIN};
    for (int i = 0; i < m->nw; i++) pf[np++] = (struct pollfd){.fd = m->w[i].ctl, .events = POLLIN};
    /* at least once a second: an exit whose SIGCHLD another thread took
     * is reaped all the same */
    int ms = 1000;
    if (next) {
      double d = next - mono_now();
      ms = d <= 0 ? 0 : d < 1.0 ? (int)(d * 1000.0 + 1) : 1000;
    }
    if (poll(pf, (nfds_t)np, ms) < 0 && errno != EINTR) {
      sleep(1);
      continue;
    }
    /* control sockets first: the pids in pf are those before any reap */
    for (int i = np - 1; i >= 1 && !child; i--)
      if (i - 1 < m->nw && pf[i].fd >= 0 && pf[i].fd == m->w[i - 1].ctl && pf[i].revents)
        on_ctl(m, i - 1, info, &child);
    if (child) break;
    if (pf[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(m->sfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (on_signal(m, (int)si.ssi_signo, info) == 1) {
          child = 1;
          break;
        }
    }
    if (child) break;
    reap(m);
  }
  free(pf);
  return child;
}

/* the master's copies of the listeners: a socket per server (shared) or
 * per server and worker (reuseport, the server's own first); the server's
 * descriptor then points at an unbound socket, so the master holds the
 * listeners only through these copies (closed at shutdown) */
static int master_socks(master_t *m) {
  m->nsocks = m->o.shared ? 1 : m->o.n;
  /* a listener that had SO_REUSEPORT before may share its group with
   * other processes: their sockets' places in it are unknown */
  m->can_steer = m->nsocks > 1;
  for (int s = 0; s < m->nsrv; s++) {
    int on = 0;
    socklen_t len = sizeof on;
    if (getsockopt(lh_server_fd(m->srv[s]), SOL_SOCKET, SO_REUSEPORT, &on, &len) != 0 || on)
      m->can_steer = 0;
  }
  m->socks = malloc((size_t)(m->nsrv * m->nsocks + 1) * sizeof *m->socks);
  if (!m->socks) return UV_ENOMEM;
  for (int i = 0; i < m->nsrv * m->nsocks; i++) m->socks[i] = -1;
  for (int s = 0; s < m->nsrv; s++) {
    int fd = lh_server_fd(m->srv[s]);
    if (fd < 0) return UV_EINVAL;
    m->socks[s * m->nsocks] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (m->socks[s * m->nsocks] < 0) return -errno;
    for (int k = 1; k < m->nsocks; k++) {
      int r = lh_server_reuseport_peer(m->srv[s]);
      if (r < 0) return r;
      m->socks[s * m->nsocks + k] = r;
    }
  }
  int dummy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (dummy < 0) return -errno;
  for (int s = 0; s < m->nsrv; s++) {
    lh_server_hold(m->srv[s], 1);
    (void)!dup3(dummy, lh_server_fd(m->srv[s]), O_CLOEXEC); /* the target is open: no EMFILE */
  }
  close(dummy);
  return 0;
}

int lh_workers_run(lh_loop_t *l, lh_server_t *const *srv, int nsrv, const lh_workers_opts_t *o,
                   lh_worker_info_t *info) {
  if (o->n < 1 || nsrv < 0) return UV_EINVAL;
  master_t m;
  memset(&m, 0, sizeof m);
  m.loop = l;
  m.srv = srv;
  m.nsrv = nsrv;
  m.o = *o;
  m.me = getpid();
  m.threaded = process_threads() > 1;
  m.sfd = -1;
  m.restart_at = calloc((size_t)o->n, sizeof *m.restart_at);
  m.backoff = calloc((size_t)o->n, sizeof *m.backoff);
  m.steered = calloc((size_t)o->n, 1);
  int r = m.restart_at && m.backoff && m.steered ? 0 : UV_ENOMEM;
  /* signals wait in the signalfd from here, also those that come while
   * the sockets are made */
  if (!r) r = signals_take(&m);
  for (int s = 0; !r && s < nsrv; s++)
    if (lh_server_connections(srv[s]) > 0 || lh_server_fd(srv[s]) < 0) r = UV_EINVAL;
  if (!r) r = master_socks(&m);
  if (r) {
    /* nothing started: the servers are left as they were */
    close_socks(&m);
    signals_give_back(&m);
    master_free(&m);
    return r;
  }
  say(&m, "%d worker%s, %s listener%s, grace %g s", o->n, o->n == 1 ? "" : "s",
      o->shared ? "a shared" : "one SO_REUSEPORT", o->shared ? "" : " each", o->grace);
  int child = 0;
  for (int slot = 0; slot < o->n && !child; slot++) {
    r = spawn(&m, slot, 0, info);
    if (r == 1) child = 1;
    else if (r < 0) {
      say(&m, "cannot start worker %d: %s", slot + 1, uv_strerror(r));
      m.restart_at[slot] = mono_now() + BACKOFF_MAX;
    }
  }
  if (!child) child = supervise(&m, info);
  if (child) return 1; /* child_become freed the master's state */
  say(&m, "all workers exited");
  close_socks(&m);
  signals_give_back(&m);
  master_free(&m);
  return 0;
}
#endif /* __linux__ */

/* --- the worker's side --- */

int lh_worker_from_env(lh_worker_info_t *w) {
  const char *v = getenv("LHYPER_WORKER");
  if (!v || sscanf(v, "%d %d %d", &w->id, &w->generation, &w->ctl) != 3 || w->id < 1 ||
      fcntl(w->ctl, F_GETFD) < 0)
    return 0;
  unsetenv("LHYPER_WORKER");
  fcntl(w->ctl, F_SETFD, FD_CLOEXEC);
  /* sockets the master handed over that no server took */
  int fd;
  while ((fd = lh_inherited_next()) >= 0) close(fd);
  return 1;
}

typedef struct {
  uv_poll_t poll;  /* first: the control socket is readable */
  int fd;
  void (*cb)(void *, int);
  void *data;
  lh_defer_t ready;/* says 'r' on the loop's first iteration */
  lh_signal_t *term, *quit;
  unsigned eof : 1;
} worker_ctl_t;

static void ctl_close_cb(uv_handle_t *h) {
  worker_ctl_t *c = (worker_ctl_t *)h;
  lh_loop_t *l = h->loop->data;
  lh_loop_undefer(l, &c->ready);
  close(c->fd);
  free(c);
}

static void ctl_ready_cb(lh_defer_t *d) {
  worker_ctl_t *c = (worker_ctl_t *)((char *)d - offsetof(worker_ctl_t, ready));
  char r = 'r';
  (void)!send(c->fd, &r, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void ctl_read_cb(uv_poll_t *p, int status, int events) {
  worker_ctl_t *c = (worker_ctl_t *)p;
  if (((lh_loop_t *)p->loop->data)->closing) return;
  char buf[16];
  ssize_t r = status < 0 ? -1 : recv(c->fd, buf, sizeof buf, 0);
  if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    /* the master is gone: nobody supervises this worker now */
    uv_poll_stop(p);
    if (!c->eof) {
      c->eof = 1;
      c->cb(c->data, LH_WORKER_DRAIN);
    }
    return;
  }
  for (ssize_t i = 0; i < r; i++) c->cb(c->data, buf[i]);
}

static void ctl_signal_cb(void *data, int signum) {
  worker_ctl_t *c = data;
  c->cb(c->data, signum == SIGQUIT ? LH_WORKER_QUIT : LH_WORKER_DRAIN);
}

int lh_worker_ctl_start(lh_loop_t *l, int fd, void (*cb)(void *, int), void *data) {
  worker_ctl_t *c = calloc(1, sizeof *c);
  if (!c) return UV_ENOMEM;
  int r = uv_poll_init_socket(&l->uv, &c->poll, fd);
  if (r) {
    free(c);
    return r;
  }
  c->fd = fd;
  c->cb = cb;
  c->data = data;
  c->poll.data = (void *)ctl_close_cb; /* how lh_loop_free closes it */
  c->ready.cb = ctl_ready_cb;
  r = uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT, ctl_read_cb);
  if (r) {
    uv_close((uv_handle_t *)&c->poll, ctl_close_cb);
    return r;
  }
  uv_unref((uv_handle_t *)&c->poll);
  /* they live as long as the process: lh_loop_free closes them */
  c->term = lh_signal_start(l, SIGTERM, ctl_signal_cb, c);
  c->quit = lh_signal_start(l, SIGQUIT, ctl_signal_cb, c);
  lh_loop_defer(l, &c->ready);
  return 0;
}
