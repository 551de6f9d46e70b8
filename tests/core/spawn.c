/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap/basic.h"

void child_spawn(struct child *c, char *const argv[])
{
    memset(c, 0, sizeof(*c));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        sysbail("pipe");
    }
    c->pid = fork();
    if (c->pid < 0) {
        sysbail("fork");
    }
    if (c->pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    c->out_fd = fds[0];
}

/* Read what is available within timeout; false on EOF or timeout. */
static bool pump(struct child *c, double timeout)
{
    if (c->out_fd < 0) {
        return false;
    }
    struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
    int n = poll(&p, 1, (int)(timeout * 1000));
    if (n <= 0) {
        return false;
    }
    char buf[4096];
    ssize_t got = read(c->out_fd, buf, sizeof(buf));
    if (got <= 0) {
        close(c->out_fd);
        c->out_fd = -1;
        return false;
    }
    ward_buf_put(&c->out, buf, (size_t)got);
    return true;
}

bool child_wait_for(struct child *c, const char *needle, double timeout)
{
    double deadline = ward_monotonic() + timeout;
    for (;;) {
        const char *hit = c->out.data != NULL ? strstr(c->out.data + c->cursor, needle) : NULL;
        if (hit != NULL) {
            c->cursor = (size_t)(hit - c->out.data) + strlen(needle);
            return true;
        }
        double left = deadline - ward_monotonic();
        if (left <= 0 || !pump(c, left)) {
            if (left > 0 && c->out_fd >= 0) {
                continue;
            }
            diag("waited %.1fs for \"%s\"; output so far:\n%s", timeout, needle,
                 c->out.data != NULL ? c->out.data : "");
            return false;
        }
    }
}

int child_wait_exit(struct child *c, double timeout)
{
    double deadline = ward_monotonic() + timeout;
    while (c->out_fd >= 0 && ward_monotonic() < deadline) {
        pump(c, deadline - ward_monotonic());
    }
    int status;
    struct rusage ru;
    for (;;) {
        pid_t r = wait4(c->pid, &status, WNOHANG, &ru);
        if (r == c->pid) {
            c->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
            break;
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (ward_monotonic() >= deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            diag("child %d did not exit within %.1fs and was killed", (int)c->pid, timeout);
            return -1;
        }
        /* the pipe closed but the process is still being reaped: wait for SIGCHLD's effect */
        struct pollfd none = {.fd = -1};
        poll(&none, 1, 10);
    }
    c->pid = 0;
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

double child_cpu(const struct child *c)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)c->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    char line[4096];
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    struct ward_proc_stat ps;
    if (!got || ward_proc_stat_parse(line, &ps) != 0) {
        return -1;
    }
    return (double)(ps.utime + ps.stime) / (double)sysconf(_SC_CLK_TCK);
}

void child_free(struct child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    if (c->out_fd >= 0) {
        close(c->out_fd);
    }
    ward_buf_free(&c->out);
}
