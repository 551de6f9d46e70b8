/* SPDX-License-Identifier: Apache-2.0 */
/* wardctl against a live agent: every subcommand, table and JSON output, exit statuses. */
#include "autoconf.h"

#include <pthread.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <ev.h>

#include "http/agent.h"
#include "log.h"
#include "tap/basic.h"

#define TOKEN "wardctl-test-token-0123456789"

extern char **environ;

static struct test_agent agent;
static char wardctl[512];

struct run {
    char **argv;
    int status;
    struct ward_buf out; /* stdout and stderr */
    ev_async done;
};

/* wardctl runs in a thread-spawned child while this thread serves its requests. */
static void *runner(void *arg)
{
    struct run *r = arg;
    int fds[2];
    if (pipe(fds) != 0) {
        abort();
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    if (posix_spawn(&pid, wardctl, &fa, NULL, r->argv, environ) != 0) {
        abort();
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0) {
        ward_buf_put(&r->out, chunk, (size_t)n);
    }
    close(fds[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        status = 255 << 8;
    }
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    ev_async_send(agent.loop, &r->done);
    return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

/* Run wardctl with the agent's URL and token; returns the exit status, output in out. */
static int ctl(struct ward_buf *out, const char *first, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = wardctl;
    argv[n++] = (char *)"--url";
    argv[n++] = agent.base;
    argv[n++] = (char *)"--token-file";
    argv[n++] = agent.token_file;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && n < 31; a = va_arg(ap, const char *)) {
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n] = NULL;
    struct run r = {.argv = argv};
    ev_async_init(&r.done, on_done);
    ev_async_start(agent.loop, &r.done);
    pthread_t t;
    if (pthread_create(&t, NULL, runner, &r) != 0) {
        abort();
    }
    ev_run(agent.loop, 0);
    pthread_join(t, NULL);
    ev_async_stop(agent.loop, &r.done);
    ward_buf_puts(&r.out, "");
    *out = r.out;
    return r.status;
}

static char *file_with(const char *name, const char *text)
{
    char *path;
    if (asprintf(&path, "%s/%s", test_tmpdir(), name) < 0) {
        bail("asprintf");
    }
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

int main(void)
{
    plan(73);
    ward_log_set_level(WARD_LOG_ERROR);
    const char *builddir = getenv("WARD_BUILDDIR");
    snprintf(wardctl, sizeof(wardctl), "%s/wardctl", builddir != NULL ? builddir : WARD_BUILDDIR);
    unsetenv("WARD_URL");
    unsetenv("WARD_TOKEN_FILE");
    /* not the default loop: its SIGCHLD handler would reap wardctl before waitpid sees it */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    test_agent_start(&agent, loop, test_tmpdir(), TOKEN);
    test_agent_add_hosts(&agent, "h", 6, 3);
    struct ward_buf o;

    is_int(0, ctl(&o, "doctor", NULL), "doctor on a healthy agent exits 0");
    contains(o.data, "Summary: HEALTHY", "and says so");
    contains(o.data, "host(s):", "doctor counts hosts per state");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "hosts", NULL), "hosts");
    contains(o.data, "NAME", "hosts prints a table header");
    contains(o.data, "h-0000", "hosts lists the hosts");
    contains(o.data, "Available", "with their state");
    lacks(o.data, "\033[", "no colour when stdout is not a terminal");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "-o", "json", "hosts", NULL), "hosts -o json");
    cJSON *j = cJSON_Parse(o.data);
    is_int(6, cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), "the JSON lists every host");
    cJSON_Delete(j);
    ward_buf_free(&o);
    is_int(0, ctl(&o, "hosts", "--label", "rack=r1", NULL), "hosts --label");
    ok(strstr(o.data, "h-0001") && !strstr(o.data, "h-0000"), "the label filter applies");
    ward_buf_free(&o);

    is_int(0, ctl(&o, "host", "show", "h-0000", NULL), "host show");
    contains(o.data, "Name:       h-0000", "host show prints the host");
    contains(o.data, "lifecycle", "and its states");
    ward_buf_free(&o);
    is_int(1, ctl(&o, "host", "show", "nope", NULL), "host show of an unknown host fails");
    contains(o.data, "404", "with the agent's status");
    ward_buf_free(&o);

    is_int(0, ctl(&o, "host", "add", "newhost", "--label", "rack=r9", NULL), "host add");
    ward_buf_free(&o);
    {
        /* without the token */
        char *argv[] = {wardctl,       (char *)"--url", agent.base, (char *)"host",
                        (char *)"add", (char *)"other", NULL};
        struct run r = {.argv = argv};
        ev_async_init(&r.done, on_done);
        ev_async_start(agent.loop, &r.done);
        pthread_t t;
        pthread_create(&t, NULL, runner, &r);
        ev_run(agent.loop, 0);
        pthread_join(t, NULL);
        ev_async_stop(agent.loop, &r.done);
        ward_buf_puts(&r.out, "");
        is_int(1, r.status, "a change without a token is refused");
        contains(r.out.data, "--token-file", "and wardctl says how to pass one");
        ward_buf_free(&r.out);
    }

    is_int(0, ctl(&o, "claim", "--consumer", "c1", "--selector", "rack=r1", NULL), "claim");
    contains(o.data, "for c1", "claim names the consumer");
    char claimed[64] = "";
    sscanf(o.data, "claimed %63s", claimed);
    ok(strcmp(claimed, "h-0001") == 0 || strcmp(claimed, "h-0004") == 0,
       "the claimed host matches the selector (%s)", claimed);
    ward_buf_free(&o);
    is_int(0, ctl(&o, "transition", claimed, "Provisioning", "--reason", "image ready", NULL),
           "transition");
    contains(o.data, "-> Provisioning", "transition reports the new state");
    ward_buf_free(&o);
    is_int(1, ctl(&o, "transition", "h-0002", "Provisioning", "--reason", "go", NULL),
           "a refused transition fails");
    contains(o.data, "no consumer reference", "with the guard's reason");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "history", claimed, NULL), "history");
    ok(strstr(o.data, "Claimed") && strstr(o.data, "image ready"), "history shows the transitions");
    ward_buf_free(&o);

    is_int(0, ctl(&o, "claim", "--consumer", "c2", "--selector", "rack=r2", NULL), "second claim");
    char second[64] = "";
    sscanf(o.data, "claimed %63s", second);
    ward_buf_free(&o);
    is_int(1, ctl(&o, "release", second, "--consumer", "c9", NULL),
           "release by another consumer fails");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "release", second, "--consumer", "c2", NULL), "release");
    ward_buf_free(&o);
    is_int(0,
           ctl(&o, "claim", "--consumer", "c2", "--image", "https://img.example/os.iso",
               "--selector", "rack=r2", NULL),
           "claim with an image");
    contains(o.data, "to boot https://img.example/os.iso", "the claim reports the image");
    char third[64] = "";
    sscanf(o.data, "claimed %63s", third);
    ward_buf_free(&o);
    is_int(0, ctl(&o, "host", "image", third, "none", "--consumer", "c2", NULL), "clear the image");
    contains(o.data, "image cleared", "wardctl says it is cleared");
    ward_buf_free(&o);
    is_int(0,
           ctl(&o, "host", "image", third, "http://img.example/v2.iso", "--consumer", "c2", NULL),
           "set another image");
    contains(o.data, "image set to http://img.example/v2.iso", "wardctl shows the new image");
    ward_buf_free(&o);
    is_int(1, ctl(&o, "host", "image", third, "ftp://img.example/os.iso", "--consumer", "c2", NULL),
           "an image that is not http(s) is refused");
    contains(o.data, "bootISOSource", "with the reason");
    ward_buf_free(&o);
    is_int(2, ctl(&o, "host", "image", third, "--consumer", "c2", NULL),
           "host image without a URL is a usage error");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "release", third, "--consumer", "c2", NULL), "release it again");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "host", "reset", claimed, "--reason", "stuck in Provisioning", NULL),
           "host reset");
    contains(o.data, "-> Enrolling", "reset re-enrolls");
    ward_buf_free(&o);

    is_int(0, ctl(&o, "events", NULL), "events");
    contains(o.data, "Transition", "events lists transitions");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "events", "--type", "Warning", "--since", "1h", NULL), "events --type");
    ok(strstr(o.data, "TransitionRefused") && !strstr(o.data, " Normal "),
       "only warnings are listed");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "-o", "json", "events", "--name", "h-0002", NULL), "events -o json");
    contains(o.data, "\"kind\":\"EventList\"", "events JSON is an EventList");
    ward_buf_free(&o);

    is_int(0, ctl(&o, "queue", "status", NULL), "queue status");
    contains(o.data, "max_size", "queue status prints the queue");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "queue", "drain", NULL), "queue drain");
    ok(agent.draining, "the agent drains");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "queue", "resume", NULL), "queue resume");
    ok(!agent.draining, "the agent resumes");
    ward_buf_free(&o);
    is_int(0, ctl(&o, "policy", "reload", NULL), "policy reload");
    is_int(1, agent.reloads, "the agent reloaded");
    ward_buf_free(&o);
    char *good = strdup(WARD_SRCDIR "/policies/physicalhost.lua");
    char *bad = file_with("bad.lua", "local M = {}\nM.states = {'A',\nreturn M\n");
    is_int(0, ctl(&o, "policy", "check", good, NULL), "policy check of a good file");
    ward_buf_free(&o);
    is_int(1, ctl(&o, "policy", "check", bad, NULL), "policy check of a broken file fails");
    contains(o.data, "bad.lua:3", "with file and line");
    ward_buf_free(&o);

    char *cfg_good = file_with("good.conf.lua",
                               "log_level = \"info\"\nhttp = { listen = \"127.0.0.1:9580\" }\n");
    char *cfg_bad = file_with("bad.conf.lua", "log_level = \"info\"\nlog_levle = \"debug\"\n");
    char *cfg_open = file_with("open.conf.lua", "http = { listen = \"0.0.0.0:9580\" }\n");
    is_int(0, ctl(&o, "config", "check", cfg_good, NULL), "config check of a good file");
    ward_buf_free(&o);
    is_int(1, ctl(&o, "config", "check", cfg_bad, NULL),
           "config check of a misspelt setting fails");
    contains(o.data, "unknown setting 'log_levle'", "naming the setting");
    ward_buf_free(&o);
    is_int(1, ctl(&o, "config", "check", cfg_open, NULL),
           "config check refuses a public listener without TLS");
    ward_buf_free(&o);

    is_int(0, ctl(&o, "host", "remove", "newhost", NULL), "host remove");
    ward_buf_free(&o);

    test_agent_set_state(&agent, "h-0005", "Error");
    agent.queue_length = 90;
    is_int(1, ctl(&o, "doctor", NULL), "doctor with warnings exits 1");
    contains(o.data, "1 host(s) in Error: h-0005", "it names hosts in Error");
    contains(o.data, "provisioning queue 90 of 100 (90%)", "it reports the queue above 80%%");
    contains(o.data, "warning event(s) in the last hour", "it reports recent warnings");
    contains(o.data, "Recommended actions:", "it recommends actions");
    ward_buf_free(&o);
    {
        char *argv[] = {wardctl, (char *)"--url", (char *)"http://127.0.0.1:1", (char *)"doctor",
                        NULL};
        struct run r = {.argv = argv};
        ev_async_init(&r.done, on_done);
        ev_async_start(agent.loop, &r.done);
        pthread_t t;
        pthread_create(&t, NULL, runner, &r);
        ev_run(agent.loop, 0);
        pthread_join(t, NULL);
        ev_async_stop(agent.loop, &r.done);
        is_int(3, r.status, "doctor against no agent exits 3");
        ward_buf_free(&r.out);
    }
    is_int(2, ctl(&o, "frobnicate", NULL), "an unknown command is a usage error");
    ward_buf_free(&o);

    free(good);
    free(bad);
    free(cfg_good);
    free(cfg_bad);
    free(cfg_open);
    test_agent_stop(&agent);
    ev_loop_destroy(loop);
    return 0;
}
