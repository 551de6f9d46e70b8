/* SPDX-License-Identifier: Apache-2.0 */
/* ward-bmcsim: serve a fleet of simulated Redfish BMCs on loopback over HTTPS.
 *
 * One listening socket per BMC, owned by an acceptor thread that hands accepted
 * connections to libmicrohttpd daemons (no listening socket of their own); the BMC is
 * found from the connection's fd. Latency, hangs and slow bodies suspend the connection
 * and a timer thread resumes it, so no worker ever sleeps. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/rand.h>

#include "bmcsim.h"

#define SIM_UPLOAD_MAX (64 * 1024)
#define SIM_DRIP_BYTES 16
#define SIM_HANG_SLICE 0.1
/* where BMCs listen when no --base-port is given: below Linux's ephemeral range */
#define SIM_AUTO_PORT_START 10000
#define SIM_AUTO_PORT_END 32768

struct sim_fleet *sim_fleet;

static _Atomic double clock_offset;
static atomic_bool stopping;

double sim_now(void)
{
    return ward_monotonic() + atomic_load(&clock_offset);
}

void sim_clock_advance(double seconds)
{
    double cur = atomic_load(&clock_offset);
    while (!atomic_compare_exchange_weak(&clock_offset, &cur, cur + seconds)) {
    }
}

/* ---------------------------------------------------------------------------------------- */
/* per-request context, owned by MHD's con_cls until the completion callback */

enum sim_body_mode { BODY_PLAIN, BODY_TRUNCATED, BODY_DRIP };

struct sim_req {
    struct sim_bmc *bmc;
    struct MHD_Connection *conn;
    struct ward_buf upload;
    bool too_big;
    bool waited; /* latency (or hang) already served */
    bool hung;
    double hang_until;        /* monotonic */
    struct sim_faults faults; /* snapshot at request start */
    enum sim_body_mode mode;
    char *body; /* owned, for callback bodies */
    size_t body_len;
    size_t cut;
    atomic_bool drip_ready;
    atomic_bool counted; /* still counted in the BMC's active requests */
    bool holding;        /* held is an answer waiting for its expanded members' latency */
    struct sim_response held;
};

/* A request stops counting as in flight once its answer is complete on our side: queued
 * (before a byte is sent) or, for bodies we hand out piecemeal, the last piece given. Doing it
 * no later keeps a client that waits for each answer from ever seeing 2 in max_concurrent. */
static void uncount(struct sim_req *rq)
{
    if (atomic_exchange(&rq->counted, false)) {
        pthread_mutex_lock(&rq->bmc->lock);
        rq->bmc->active--;
        pthread_mutex_unlock(&rq->bmc->lock);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* timer thread: resumes suspended connections at their deadline */

struct sim_timer_entry {
    double at;
    struct sim_req *req;
    bool drip;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct sim_timer_entry *heap;
    size_t len, cap;
    bool quit;
    pthread_t thread;
} timers = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void heap_swap(size_t a, size_t b)
{
    struct sim_timer_entry t = timers.heap[a];
    timers.heap[a] = timers.heap[b];
    timers.heap[b] = t;
}

static void resume_entry(struct sim_timer_entry *e)
{
    if (e->drip) {
        atomic_store(&e->req->drip_ready, true);
    }
    MHD_resume_connection(e->req->conn);
}

/* The connection must already be suspended. */
static void timer_add(struct sim_req *req, double at, bool drip)
{
    struct sim_timer_entry e = {.at = at, .req = req, .drip = drip};
    pthread_mutex_lock(&timers.lock);
    if (timers.quit) {
        pthread_mutex_unlock(&timers.lock);
        resume_entry(&e);
        return;
    }
    if (timers.len == timers.cap) {
        size_t cap = timers.cap ? timers.cap * 2 : 1024;
        struct sim_timer_entry *h = realloc(timers.heap, cap * sizeof(*h));
        if (h == NULL) {
            pthread_mutex_unlock(&timers.lock);
            resume_entry(&e);
            return;
        }
        timers.heap = h;
        timers.cap = cap;
    }
    size_t i = timers.len++;
    timers.heap[i] = e;
    while (i > 0 && timers.heap[(i - 1) / 2].at > timers.heap[i].at) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    if (i == 0) {
        pthread_cond_signal(&timers.cond);
    }
    pthread_mutex_unlock(&timers.lock);
}

static struct sim_timer_entry heap_pop(void)
{
    struct sim_timer_entry top = timers.heap[0];
    timers.heap[0] = timers.heap[--timers.len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < timers.len && timers.heap[l].at < timers.heap[m].at) {
            m = l;
        }
        if (r < timers.len && timers.heap[r].at < timers.heap[m].at) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(i, m);
        i = m;
    }
    return top;
}

static void *timer_main(void *arg)
{
    pthread_mutex_lock(&timers.lock);
    while (!timers.quit) {
        if (timers.len == 0) {
            pthread_cond_wait(&timers.cond, &timers.lock);
            continue;
        }
        double now = ward_monotonic();
        if (timers.heap[0].at <= now) {
            struct sim_timer_entry e = heap_pop();
            pthread_mutex_unlock(&timers.lock);
            resume_entry(&e);
            pthread_mutex_lock(&timers.lock);
            continue;
        }
        double wait = timers.heap[0].at - now;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + wait;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&timers.cond, &timers.lock, &ts);
    }
    /* Shutting down: let every held connection go so the daemons can stop. */
    while (timers.len > 0) {
        struct sim_timer_entry e = heap_pop();
        pthread_mutex_unlock(&timers.lock);
        resume_entry(&e);
        pthread_mutex_lock(&timers.lock);
    }
    pthread_mutex_unlock(&timers.lock);
    return NULL;
}

static int timers_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&timers.cond, &attr);
    pthread_condattr_destroy(&attr);
    return -pthread_create(&timers.thread, NULL, timer_main, NULL);
}

static void timers_stop(void)
{
    pthread_mutex_lock(&timers.lock);
    timers.quit = true;
    pthread_cond_signal(&timers.cond);
    pthread_mutex_unlock(&timers.lock);
    pthread_join(timers.thread, NULL);
    free(timers.heap);
    timers.heap = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* MHD glue */

/* fd -> BMC for accepted connections; written by the acceptor before MHD sees the fd. */
static struct sim_bmc **fd_bmc;
static size_t fd_bmc_len;

/* Connections handed to MHD that have not yet sent a request (mostly: in the TLS handshake).
 * libmicrohttpd's work per wake-up grows with the handshakes under way, so thousands at once
 * cost minutes; the acceptor lets at most SIM_MAX_HANDSHAKES be pending and leaves the rest
 * in the listen backlog. fd_handshaking[fd] says whether fd is one of them. */
#define SIM_MAX_HANDSHAKES 128
static atomic_int handshaking;
static atomic_bool *fd_handshaking;

static void handshake_done(int fd)
{
    if (fd >= 0 && (size_t)fd < fd_bmc_len && atomic_exchange(&fd_handshaking[fd], false)) {
        atomic_fetch_sub(&handshaking, 1);
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL) {
            handshake_done(ci->connect_fd);
        }
    }
}

static ssize_t body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sim_req *rq = cls;
    if (rq->mode == BODY_TRUNCATED) {
        if (pos >= rq->cut) {
            uncount(rq);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = rq->cut - (size_t)pos;
        n = n < max ? n : max;
        memcpy(buf, rq->body + pos, n);
        return (ssize_t)n;
    }
    if (atomic_load(&stopping)) {
        uncount(rq);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (pos >= rq->body_len) {
        uncount(rq);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (atomic_exchange(&rq->drip_ready, false)) {
        size_t n = rq->body_len - (size_t)pos;
        n = n < max ? n : max;
        n = n < SIM_DRIP_BYTES ? n : SIM_DRIP_BYTES;
        memcpy(buf, rq->body + pos, n);
        if (pos + n >= rq->body_len) {
            uncount(rq);
        }
        return (ssize_t)n;
    }
    MHD_suspend_connection(rq->conn);
    timer_add(rq, ward_monotonic() + sim_fleet->opt.drip_interval, true);
    return 0;
}

static void count_status(struct sim_bmc *b, int status)
{
    pthread_mutex_lock(&b->lock);
    if (status < 300) {
        b->responses_2xx++;
    } else if (status < 500) {
        b->responses_4xx++;
    } else {
        b->responses_5xx++;
    }
    pthread_mutex_unlock(&b->lock);
}

static enum MHD_Result send_response(struct sim_req *rq, struct sim_response *rs)
{
    struct sim_bmc *b = rq->bmc;
    struct MHD_Response *resp;
    size_t len = rs->body != NULL ? strlen(rs->body) : 0;
    bool injected = false;
    if (rs->body == NULL) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (rq->faults.malformed) {
        /* Cut inside the JSON text: a complete HTTP answer whose body does not parse. */
        size_t half = len / 2;
        resp = MHD_create_response_from_buffer(half, rs->body, MHD_RESPMEM_MUST_COPY);
        injected = true;
    } else if (rq->faults.truncated || rq->faults.slow_drip) {
        rq->body = rs->body;
        rq->body_len = len;
        rs->body = NULL;
        rq->mode = rq->faults.truncated ? BODY_TRUNCATED : BODY_DRIP;
        rq->cut = len / 2;
        atomic_store(&rq->drip_ready, true);
        resp = MHD_create_response_from_callback(len, 4096, body_reader, rq, NULL);
        injected = true;
    } else {
        resp = MHD_create_response_from_buffer(len, rs->body, MHD_RESPMEM_MUST_FREE);
        if (resp != NULL) {
            rs->body = NULL; /* the response owns it now */
        }
    }
    if (resp == NULL) {
        return MHD_NO;
    }
    if (len > 0) {
        MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    }
    MHD_add_response_header(resp, "OData-Version", "4.0");
    MHD_add_response_header(resp, "Server", b->flavour->server);
    for (int i = 0; i < rs->nheaders; i++) {
        MHD_add_response_header(resp, rs->header_names[i], rs->header_values[i]);
    }
    if (rs->status == 401 && rs->basic_challenge) {
        MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"ward-bmcsim\"");
    }
    count_status(b, rs->status);
    if (injected) {
        pthread_mutex_lock(&b->lock);
        b->faults_injected++;
        pthread_mutex_unlock(&b->lock);
    }
    if (rq->mode == BODY_PLAIN) {
        uncount(rq);
    }
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)rs->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The client closed its side (gave up waiting). */
static bool peer_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL) {
        return true;
    }
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct sim_req *rq = *con_cls;
    if (rq == NULL) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci == NULL || ci->connect_fd < 0 || (size_t)ci->connect_fd >= fd_bmc_len ||
            fd_bmc[ci->connect_fd] == NULL) {
            return MHD_NO;
        }
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        struct sim_bmc *b = fd_bmc[ci->connect_fd];
        handshake_done(ci->connect_fd);
        rq->bmc = b;
        rq->conn = conn;
        pthread_mutex_lock(&b->lock);
        b->requests++;
        b->active++;
        if (b->active > b->max_active) {
            b->max_active = b->active;
        }
        rq->faults = b->faults;
        pthread_mutex_unlock(&b->lock);
        atomic_store(&rq->counted, true);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->upload.len + *upload_data_size > SIM_UPLOAD_MAX) {
            rq->too_big = true;
        } else {
            ward_buf_put(&rq->upload, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->holding) {
        rq->holding = false;
        enum MHD_Result ret = send_response(rq, &rq->held);
        sim_response_free(&rq->held);
        return ret;
    }
    struct sim_bmc *b = rq->bmc;
    if (rq->hung) {
        /* Held in slices so a client that gives up stops counting as in flight at once;
         * after hang_time the connection is dropped unanswered. */
        double now = ward_monotonic();
        if (peer_gone(conn) || now >= rq->hang_until || atomic_load(&stopping)) {
            return MHD_NO;
        }
        MHD_suspend_connection(conn);
        timer_add(rq, now + SIM_HANG_SLICE < rq->hang_until ? now + SIM_HANG_SLICE : rq->hang_until,
                  false);
        return MHD_YES;
    }
    if (!rq->waited) {
        rq->waited = true;
        double delay = rq->faults.latency_ms / 1000.0;
        if (rq->faults.jitter_ms > 0) {
            pthread_mutex_lock(&b->lock);
            delay += sim_bmc_random(b) * rq->faults.jitter_ms / 1000.0;
            pthread_mutex_unlock(&b->lock);
        }
        if (rq->faults.hang) {
            rq->hung = true;
            rq->hang_until = ward_monotonic() + sim_fleet->opt.hang_time;
            delay = SIM_HANG_SLICE < sim_fleet->opt.hang_time ? SIM_HANG_SLICE
                                                              : sim_fleet->opt.hang_time;
            pthread_mutex_lock(&b->lock);
            b->faults_injected++;
            pthread_mutex_unlock(&b->lock);
        }
        if (delay > 0 && !atomic_load(&stopping)) {
            MHD_suspend_connection(conn);
            timer_add(rq, ward_monotonic() + delay, false);
            return MHD_YES;
        }
        if (rq->hung) {
            return MHD_NO;
        }
    }
    if (rq->faults.reset) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL) {
            /* Linger 0: close() sends RST instead of FIN. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        pthread_mutex_lock(&b->lock);
        b->faults_injected++;
        pthread_mutex_unlock(&b->lock);
        return MHD_NO;
    }
    struct sim_response rs = {0};
    bool fail = false;
    if (rq->faults.error_rate > 0) {
        pthread_mutex_lock(&b->lock);
        fail = sim_bmc_random(b) < rq->faults.error_rate;
        if (fail) {
            b->faults_injected++;
        }
        pthread_mutex_unlock(&b->lock);
    }
    if (fail) {
        rs.status = 500;
        rs.body = strdup("{\"error\":{\"code\":\"Base.1.8.InternalError\",\"message\":\"The "
                         "request failed due to an internal service error.\","
                         "\"@Message.ExtendedInfo\":[{\"@odata.type\":\"#Message.v1_1_1."
                         "Message\",\"MessageId\":\"Base.1.8.InternalError\",\"Message\":\"The "
                         "request failed due to an internal service error.  The service is "
                         "still operational.\",\"Severity\":\"Critical\",\"Resolution\":"
                         "\"Resubmit the request.\"}]}}");
    } else if (rq->too_big) {
        rs.status = 413;
        rs.body = strdup("{\"error\":{\"code\":\"Base.1.8.GeneralError\",\"message\":\"The "
                         "request body is too large.\",\"@Message.ExtendedInfo\":[]}}");
    } else {
        struct sim_request req = {
            .method = method,
            .url = url,
            .body = rq->upload.data,
            .body_len = rq->upload.len,
            .token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Auth-Token"),
            .if_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-Match"),
            .expand = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "$expand"),
        };
        char *pass = NULL;
        char *user = MHD_basic_auth_get_username_password(conn, &pass);
        req.basic_user = user;
        req.basic_pass = pass;
        sim_redfish_handle(b, &req, &rs);
        if (pass != NULL) {
            explicit_bzero(pass, strlen(pass));
        }
        MHD_free(user);
        MHD_free(pass);
    }
    if (rs.expanded > 0 && rq->faults.latency_ms > 0 && !atomic_load(&stopping)) {
        /* A service builds each member it expands as it would answer that member's own GET,
         * so the answer costs the latency once more per member. */
        rq->held = rs;
        rq->holding = true;
        MHD_suspend_connection(conn);
        timer_add(rq, ward_monotonic() + rs.expanded * (rq->faults.latency_ms / 1000.0), false);
        return MHD_YES;
    }
    enum MHD_Result ret = send_response(rq, &rs);
    sim_response_free(&rs);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sim_req *rq = *con_cls;
    if (rq == NULL) {
        return;
    }
    uncount(rq);
    if (rq->holding) {
        sim_response_free(&rq->held);
    }
    ward_buf_free(&rq->upload);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* acceptor */

static struct MHD_Daemon **daemons[SIM_CERT_COUNT];
static int ndaemons[SIM_CERT_COUNT];
static int epfd = -1, stopfd = -1;
static pthread_t acceptor;

/* Address mode: one socket for the whole fleet, on every 127/8 address of lo. */
static int shared_fd = -1;
static uint32_t address_base; /* host order; 0 in port mode */
#define SIM_SHARED_LISTENER (UINT32_MAX - 1)

static struct sim_bmc *bmc_by_local_address(int fd)
{
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) != 0 || local.sin_family != AF_INET) {
        return NULL;
    }
    uint32_t a = ntohl(local.sin_addr.s_addr);
    if (a < address_base || a - address_base >= (uint32_t)sim_fleet->nbmcs) {
        return NULL;
    }
    return &sim_fleet->bmcs[a - address_base];
}

static void *acceptor_main(void *arg)
{
    struct epoll_event evs[64];
    unsigned rr = 0;
    double last_emfile = 0;
    for (;;) {
        int n = epoll_wait(epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == UINT32_MAX) {
                return NULL;
            }
            if (atomic_load(&handshaking) >= SIM_MAX_HANDSHAKES) {
                /* Enough handshakes under way: come back in a moment (only the acceptor
                 * waits; the listen backlog holds the rest). */
                struct timespec pause = {.tv_nsec = 1000 * 1000};
                nanosleep(&pause, NULL);
                continue;
            }
            bool shared = evs[i].data.u32 == SIM_SHARED_LISTENER;
            struct sim_bmc *b = shared ? NULL : &sim_fleet->bmcs[evs[i].data.u32];
            int lfd = shared ? shared_fd : b->listen_fd;
            while (atomic_load(&handshaking) < SIM_MAX_HANDSHAKES) {
                struct sockaddr_storage addr;
                socklen_t alen = sizeof(addr);
                int fd =
                    accept4(lfd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EMFILE || errno == ENFILE) {
                        /* The socket stays readable: pause instead of spinning, say so once
                         * a second. */
                        double now = ward_monotonic();
                        if (now - last_emfile > 1) {
                            fprintf(stderr,
                                    "ward-bmcsim: out of file descriptors accepting on %s\n",
                                    shared ? "the shared socket" : b->address);
                            last_emfile = now;
                        }
                        struct timespec pause = {.tv_nsec = 10 * 1000 * 1000};
                        nanosleep(&pause, NULL);
                    }
                    break;
                }
                if ((size_t)fd >= fd_bmc_len) {
                    close(fd);
                    continue;
                }
                if (shared) {
                    /* Which BMC: the address the client connected to. */
                    b = bmc_by_local_address(fd);
                    if (b == NULL) {
                        close(fd);
                        continue;
                    }
                }
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                fd_bmc[fd] = b;
                atomic_store(&fd_handshaking[fd], true);
                atomic_fetch_add(&handshaking, 1);
                int cert = __atomic_load_n(&b->faults.wrong_cert, __ATOMIC_RELAXED);
                if (cert < 0 || cert >= SIM_CERT_COUNT || ndaemons[cert] == 0) {
                    cert = 0;
                }
                struct MHD_Daemon *d = cert == 0 && address_base != 0 && ndaemons[0] > 1
                                           ? daemons[0][b->index / SIM_ADDRESS_GROUP]
                                           : daemons[cert][rr++ % (unsigned)ndaemons[cert]];
                /* MHD closes the fd itself when it cannot take it. */
                if (MHD_add_connection(d, fd, (struct sockaddr *)&addr, alen) != MHD_YES) {
                    handshake_done(fd);
                }
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* startup */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ward-bmcsim --state-dir DIR [options]\n"
            "  -n, --bmcs N             number of BMCs (default 1)\n"
            "  -f, --flavour LIST       comma-separated flavours, assigned round robin, or "
            "'all'\n"
            "                           (generic, dell-like, hpe-like, supermicro-like, "
            "openbmc-like)\n"
            "  -p, --base-port P        first port; BMC i listens on P+i (default 0: free ports "
            "from a random start in 10000-32767)\n"
            "  -c, --control-port P     control API port (default 0: any free port)\n"
            "      --systems K          systems per BMC (default 1, at most 8)\n"
            "      --threads T          HTTP worker threads (default 2)\n"
            "      --plain-http         serve HTTP instead of HTTPS\n"
            "      --shared-password    one password and file (fleet.password) for all BMCs\n"
            "      --address-base A     BMC i at address A+i (in 127/8), all on one port\n"
            "                           (--base-port, default any): one socket for the fleet\n"
            "      --lockout-after N    lock the account after N failed logins in a row (default "
            "0: never)\n"
            "      --lockout-ms MS      how long the lock lasts (default 60000)\n"
            "      --power-delay-ms MS  time a power change takes (default 1000)\n"
            "      --poweron-block-ms MS  power-on refused this long after off, with quirk "
            "poweron_409 (default 3000)\n"
            "      --task-ms MS         time a task monitor stays Running (default 500)\n"
            "      --session-timeout S  idle session lifetime in seconds (default 1800)\n"
            "      --max-sessions N     sessions per BMC before 503 (default 8)\n"
            "      --idle-timeout S     idle keep-alive connections closed after S (default 60)\n"
            "      --hang-ms MS         how long a hung request is held (default 300000)\n"
            "      --drip-ms MS         pause between slow-drip pieces (default 200)\n"
            "      --quirk NAME         switch a quirk on for every BMC (repeatable)\n"
            "      --no-quirk NAME      switch a flavour's quirk off (repeatable)\n"
            "      --latency-ms MS, --jitter-ms MS, --error-rate R, --hang, --reset,\n"
            "      --malformed, --truncated, --slow-drip, --wrong-cert[=ca|expired|name]\n"
            "                           faults at start (also switchable at runtime)\n"
            "      --seed N             seed for jitter and error decisions\n");
}

enum {
    OPT_SYSTEMS = 256,
    OPT_THREADS,
    OPT_PLAIN,
    OPT_SHARED_PASSWORD,
    OPT_ADDRESS_BASE,
    OPT_LOCKOUT_AFTER,
    OPT_LOCKOUT_MS,
    OPT_POWER_DELAY,
    OPT_POWERON_BLOCK,
    OPT_TASK,
    OPT_SESSION_TIMEOUT,
    OPT_MAX_SESSIONS,
    OPT_IDLE,
    OPT_HANG_MS,
    OPT_DRIP_MS,
    OPT_QUIRK,
    OPT_NO_QUIRK,
    OPT_LATENCY,
    OPT_JITTER,
    OPT_ERROR_RATE,
    OPT_HANG,
    OPT_RESET,
    OPT_MALFORMED,
    OPT_TRUNCATED,
    OPT_DRIP,
    OPT_WRONG_CERT,
    OPT_SEED,
};

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

int sim_wrong_cert_parse(const char *s)
{
    if (s == NULL || strcmp(s, "ca") == 0 || strcmp(s, "true") == 0) {
        return SIM_CERT_OTHER_CA;
    }
    if (strcmp(s, "expired") == 0) {
        return SIM_CERT_EXPIRED;
    }
    if (strcmp(s, "name") == 0) {
        return SIM_CERT_WRONG_NAME;
    }
    if (strcmp(s, "none") == 0 || strcmp(s, "false") == 0) {
        return SIM_CERT_GOOD;
    }
    return -1;
}

static int parse_args(int argc, char **argv, struct sim_options *o)
{
    static const struct option longopts[] = {
        {"bmcs", required_argument, NULL, 'n'},
        {"flavour", required_argument, NULL, 'f'},
        {"flavor", required_argument, NULL, 'f'},
        {"base-port", required_argument, NULL, 'p'},
        {"control-port", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"systems", required_argument, NULL, OPT_SYSTEMS},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"plain-http", no_argument, NULL, OPT_PLAIN},
        {"shared-password", no_argument, NULL, OPT_SHARED_PASSWORD},
        {"address-base", required_argument, NULL, OPT_ADDRESS_BASE},
        {"lockout-after", required_argument, NULL, OPT_LOCKOUT_AFTER},
        {"lockout-ms", required_argument, NULL, OPT_LOCKOUT_MS},
        {"power-delay-ms", required_argument, NULL, OPT_POWER_DELAY},
        {"poweron-block-ms", required_argument, NULL, OPT_POWERON_BLOCK},
        {"task-ms", required_argument, NULL, OPT_TASK},
        {"session-timeout", required_argument, NULL, OPT_SESSION_TIMEOUT},
        {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"hang-ms", required_argument, NULL, OPT_HANG_MS},
        {"drip-ms", required_argument, NULL, OPT_DRIP_MS},
        {"quirk", required_argument, NULL, OPT_QUIRK},
        {"no-quirk", required_argument, NULL, OPT_NO_QUIRK},
        {"latency-ms", required_argument, NULL, OPT_LATENCY},
        {"jitter-ms", required_argument, NULL, OPT_JITTER},
        {"error-rate", required_argument, NULL, OPT_ERROR_RATE},
        {"hang", no_argument, NULL, OPT_HANG},
        {"reset", no_argument, NULL, OPT_RESET},
        {"malformed", no_argument, NULL, OPT_MALFORMED},
        {"truncated", no_argument, NULL, OPT_TRUNCATED},
        {"slow-drip", no_argument, NULL, OPT_DRIP},
        {"wrong-cert", optional_argument, NULL, OPT_WRONG_CERT},
        {"seed", required_argument, NULL, OPT_SEED},
        {NULL, 0, NULL, 0},
    };
    static char *default_flavour[] = {"generic"};
    *o = (struct sim_options){
        .nbmcs = 1,
        .flavour_names = default_flavour,
        .nflavours = 1,
        .nsystems = 1,
        .threads = 2,
        .power_delay = 1.0,
        .poweron_block = 3.0,
        .task_time = 0.5,
        .session_timeout = 1800,
        .max_sessions = 8,
        .hang_time = 300,
        .drip_interval = 0.2,
        .idle_timeout = 60,
        .lockout_time = 60,
        .seed = 0x5eed,
    };
    static char *flist[64];
    static char flavour_buf[1024];
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "n:f:p:c:d:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!parse_long(optarg, 1, 60000, &v)) {
                fprintf(stderr, "ward-bmcsim: --bmcs wants 1..60000\n");
                return -EINVAL;
            }
            o->nbmcs = (int)v;
            break;
        case 'f': {
            snprintf(flavour_buf, sizeof(flavour_buf), "%s", optarg);
            o->nflavours = 0;
            if (strcmp(flavour_buf, "all") == 0) {
                for (const struct sim_flavour *f = sim_flavours; f->name != NULL; f++) {
                    flist[o->nflavours++] = (char *)f->name;
                }
            } else {
                char *save = NULL;
                for (char *t = strtok_r(flavour_buf, ",", &save); t != NULL && o->nflavours < 64;
                     t = strtok_r(NULL, ",", &save)) {
                    if (sim_flavour_find(t) == NULL) {
                        fprintf(stderr, "ward-bmcsim: unknown flavour '%s'\n", t);
                        return -EINVAL;
                    }
                    flist[o->nflavours++] = t;
                }
            }
            if (o->nflavours == 0) {
                fprintf(stderr, "ward-bmcsim: --flavour wants at least one name\n");
                return -EINVAL;
            }
            o->flavour_names = flist;
            break;
        }
        case 'p':
            if (!parse_long(optarg, 0, 65535, &v)) {
                fprintf(stderr, "ward-bmcsim: --base-port wants 0..65535\n");
                return -EINVAL;
            }
            o->base_port = (int)v;
            break;
        case 'c':
            if (!parse_long(optarg, 0, 65535, &v)) {
                fprintf(stderr, "ward-bmcsim: --control-port wants 0..65535\n");
                return -EINVAL;
            }
            o->control_port = (int)v;
            break;
        case 'd':
            o->state_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case OPT_SYSTEMS:
            if (!parse_long(optarg, 1, SIM_MAX_SYSTEMS, &v)) {
                fprintf(stderr, "ward-bmcsim: --systems wants 1..%d\n", SIM_MAX_SYSTEMS);
                return -EINVAL;
            }
            o->nsystems = (int)v;
            break;
        case OPT_THREADS:
            if (!parse_long(optarg, 1, 64, &v)) {
                fprintf(stderr, "ward-bmcsim: --threads wants 1..64\n");
                return -EINVAL;
            }
            o->threads = (int)v;
            break;
        case OPT_PLAIN:
            o->plain_http = true;
            break;
        case OPT_SHARED_PASSWORD:
            o->shared_password = true;
            break;
        case OPT_ADDRESS_BASE: {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
                fprintf(stderr, "ward-bmcsim: --address-base wants an address in 127.0.0.0/8\n");
                return -EINVAL;
            }
            o->address_base = ntohl(a.s_addr);
            break;
        }
        case OPT_LOCKOUT_AFTER:
            if (!parse_long(optarg, 0, 1000, &v)) {
                fprintf(stderr, "ward-bmcsim: --lockout-after wants 0..1000\n");
                return -EINVAL;
            }
            o->lockout_after = (int)v;
            break;
        case OPT_LOCKOUT_MS:
            if (!parse_long(optarg, 0, 86400000, &v)) {
                fprintf(stderr, "ward-bmcsim: --lockout-ms wants milliseconds\n");
                return -EINVAL;
            }
            o->lockout_time = v / 1000.0;
            break;
        case OPT_POWER_DELAY:
        case OPT_POWERON_BLOCK:
        case OPT_TASK:
        case OPT_HANG_MS:
        case OPT_DRIP_MS:
        case OPT_LATENCY:
        case OPT_JITTER:
            if (!parse_long(optarg, 0, 86400000, &v)) {
                fprintf(stderr, "ward-bmcsim: %s wants milliseconds (0..86400000)\n",
                        argv[optind - 1]);
                return -EINVAL;
            }
            if (c == OPT_POWER_DELAY) {
                o->power_delay = v / 1000.0;
            } else if (c == OPT_POWERON_BLOCK) {
                o->poweron_block = v / 1000.0;
            } else if (c == OPT_TASK) {
                o->task_time = v / 1000.0;
            } else if (c == OPT_HANG_MS) {
                o->hang_time = v / 1000.0;
            } else if (c == OPT_DRIP_MS) {
                o->drip_interval = v / 1000.0;
            } else if (c == OPT_LATENCY) {
                o->faults.latency_ms = (int)v;
            } else {
                o->faults.jitter_ms = (int)v;
            }
            break;
        case OPT_SESSION_TIMEOUT:
            if (!parse_long(optarg, 1, 86400 * 7, &v)) {
                fprintf(stderr, "ward-bmcsim: --session-timeout wants seconds\n");
                return -EINVAL;
            }
            o->session_timeout = (double)v;
            break;
        case OPT_MAX_SESSIONS:
            if (!parse_long(optarg, 1, SIM_MAX_SESSIONS_CAP, &v)) {
                fprintf(stderr, "ward-bmcsim: --max-sessions wants 1..%d\n", SIM_MAX_SESSIONS_CAP);
                return -EINVAL;
            }
            o->max_sessions = (int)v;
            break;
        case OPT_IDLE:
            if (!parse_long(optarg, 0, 86400, &v)) {
                fprintf(stderr, "ward-bmcsim: --idle-timeout wants seconds\n");
                return -EINVAL;
            }
            o->idle_timeout = (int)v;
            break;
        case OPT_QUIRK:
        case OPT_NO_QUIRK: {
            unsigned bit = sim_quirk_lookup(optarg);
            if (bit == 0) {
                fprintf(stderr, "ward-bmcsim: unknown quirk '%s'\n", optarg);
                return -EINVAL;
            }
            if (c == OPT_QUIRK) {
                o->quirks_on |= bit;
            } else {
                o->quirks_off |= bit;
            }
            break;
        }
        case OPT_ERROR_RATE: {
            char *end = NULL;
            double r = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(r >= 0 && r <= 1)) {
                fprintf(stderr, "ward-bmcsim: --error-rate wants 0..1\n");
                return -EINVAL;
            }
            o->faults.error_rate = r;
            break;
        }
        case OPT_HANG:
            o->faults.hang = true;
            break;
        case OPT_RESET:
            o->faults.reset = true;
            break;
        case OPT_MALFORMED:
            o->faults.malformed = true;
            break;
        case OPT_TRUNCATED:
            o->faults.truncated = true;
            break;
        case OPT_DRIP:
            o->faults.slow_drip = true;
            break;
        case OPT_WRONG_CERT: {
            int w = sim_wrong_cert_parse(optarg);
            if (w < 0) {
                fprintf(stderr, "ward-bmcsim: --wrong-cert wants ca, expired or name\n");
                return -EINVAL;
            }
            o->faults.wrong_cert = w;
            break;
        }
        case OPT_SEED:
            if (!parse_long(optarg, 0, LONG_MAX, &v)) {
                fprintf(stderr, "ward-bmcsim: --seed wants a number\n");
                return -EINVAL;
            }
            o->seed = (uint64_t)v;
            break;
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ward-bmcsim: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (o->state_dir == NULL) {
        fprintf(stderr, "ward-bmcsim: --state-dir is required (ca.pem, fleet.json and "
                        "password files go there)\n");
        return -EINVAL;
    }
    if (o->address_base != 0 &&
        ((o->address_base + (uint32_t)o->nbmcs - 1) >> 24 != 127 ||
         ((o->address_base + (uint32_t)o->nbmcs - 1) & 0xffffff) == 0xffffff)) {
        fprintf(stderr, "ward-bmcsim: --address-base + %d BMCs runs past 127.255.255.254\n",
                o->nbmcs);
        return -EINVAL;
    }
    if (o->address_base == 0 && o->base_port > 0 && o->base_port + o->nbmcs - 1 > 65535) {
        fprintf(stderr, "ward-bmcsim: --base-port %d + %d BMCs runs past port 65535\n",
                o->base_port, o->nbmcs);
        return -EINVAL;
    }
    return 0;
}

/* Write text to dir/name with mode. atomic: through a temporary and rename, so a reader never
 * sees half a file (fleet.json); password files are written in place, before "ready". */
static int write_file(const char *dir, const char *name, const char *text, mode_t mode, bool atomic,
                      char *path_out, size_t path_len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), atomic ? "%s.tmp" : "%s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return -errno;
    }
    fchmod(fd, mode);
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = -errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || (atomic && rename(tmp, path) != 0)) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    if (path_out != NULL) {
        snprintf(path_out, path_len, "%s", path);
    }
    return 0;
}

int sim_bmc_set_password(struct sim_bmc *b, const char *password, bool atomic)
{
    char fresh[sizeof(b->password)];
    if (password == NULL) {
        unsigned char rnd[16];
        static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return -EIO;
        }
        for (size_t i = 0; i < sizeof(rnd); i++) {
            fresh[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
        }
        fresh[sizeof(rnd)] = '\0';
        password = fresh;
    }
    if (password != b->password) {
        snprintf(b->password, sizeof(b->password), "%s", password);
    }
    if (b->password_file[0] == '\0') {
        return 0;
    }
    /* the file's directory and name, for write_file */
    char dir[600];
    snprintf(dir, sizeof(dir), "%s", b->password_file);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        return -EINVAL;
    }
    *slash = '\0';
    char text[64];
    snprintf(text, sizeof(text), "%s\n", b->password);
    int rc = write_file(dir, slash + 1, text, 0600, atomic, NULL, 0);
    explicit_bzero(text, sizeof(text));
    return rc;
}

/* One socket on every address of the loopback interface (SO_BINDTODEVICE "lo": nothing
 * from outside reaches it); returns the bound port or negative errno. */
static int open_shared_listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    shared_fd = fd;
    return ntohs(sa.sin_port);
}

static int open_listener(struct sim_bmc *b, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 256) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    b->listen_fd = fd;
    b->port = ntohs(sa.sin_port);
    snprintf(b->address, sizeof(b->address), "%s://127.0.0.1:%d",
             sim_fleet->opt.plain_http ? "http" : "https", b->port);
    return 0;
}

/* group >= 0: the good certificate of that address block. */
static struct MHD_Daemon *start_daemon(const struct sim_tls *tls, int cert, int group)
{
    const char *cert_pem = group >= 0 ? tls->group_pem[group] : tls->cert_pem[cert];
    const struct sim_options *o = &sim_fleet->opt;
    /* poll(2), not epoll: with libmicrohttpd 0.9.75's epoll loop a TLS connection waiting
     * for the client's next handshake flight is handed to gnutls_handshake again at every
     * wake-up (about 100 calls per connection instead of 3 while wardd enrolls 1,000
     * hosts), and each call recomputes the handshake hashes: the simulator then spent 3 to
     * 10 CPU-seconds per 1,000 enrollments, varying from run to run, where poll needs 3. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (!o->plain_http) {
        flags |= MHD_USE_TLS;
    }
    unsigned limit = (unsigned)(fd_bmc_len > 16 ? fd_bmc_len : 16);
    if (o->plain_http) {
        return MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_CONNECTION_LIMIT, limit,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout, MHD_OPTION_END);
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)o->idle_timeout, MHD_OPTION_HTTPS_MEM_KEY, tls->key_pem[cert],
                            MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
}

static char *fleet_json(const char *ca_path, int control_port)
{
    cJSON *root = cJSON_CreateObject();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", control_port);
    cJSON_AddStringToObject(root, "control", url);
    if (ca_path != NULL) {
        cJSON_AddStringToObject(root, "ca", ca_path);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "bmcs");
    for (int i = 0; i < sim_fleet->nbmcs; i++) {
        struct sim_bmc *b = &sim_fleet->bmcs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", b->name);
        cJSON_AddStringToObject(o, "address", b->address);
        cJSON_AddStringToObject(o, "flavour", b->flavour->name);
        cJSON_AddStringToObject(o, "username", b->flavour->username);
        cJSON_AddStringToObject(o, "password_file", b->password_file);
        cJSON *sys = cJSON_AddArrayToObject(o, "systems");
        for (int s = 0; s < b->nsystems; s++) {
            cJSON_AddItemToArray(sys, cJSON_CreateString(b->systems[s].path));
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

int main(int argc, char **argv)
{
    static struct sim_fleet fleet;
    sim_fleet = &fleet;
    if (parse_args(argc, argv, &fleet.opt) != 0) {
        return 2;
    }
    struct sim_options *o = &fleet.opt;
    if (!o->plain_http && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "ward-bmcsim: this libmicrohttpd has no TLS support\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* Every BMC needs a listening socket plus its clients' connections. */
    struct rlimit rl = {0};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        /* A listening socket and a client connection per BMC, plus some: beyond the hard
         * limit only with privilege, so try and fall back to the hard limit. */
        rlim_t want = (rlim_t)o->nbmcs * 2 + 1024;
        if (want > rl.rlim_max) {
            struct rlimit more = {.rlim_cur = want, .rlim_max = want};
            if (setrlimit(RLIMIT_NOFILE, &more) == 0) {
                rl = more;
            }
        }
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < want) {
            fprintf(stderr,
                    "ward-bmcsim: warning: %d BMCs with a connection each need about %llu file "
                    "descriptors; the limit is %llu\n",
                    o->nbmcs, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
        }
    }
    fd_bmc_len = rl.rlim_cur > 1048576 ? 1048576 : (size_t)rl.rlim_cur;
    if ((size_t)o->nbmcs + 64 > fd_bmc_len) {
        fprintf(stderr, "ward-bmcsim: %d BMCs need more file descriptors than the limit (%zu)\n",
                o->nbmcs, fd_bmc_len);
        return 1;
    }
    fd_bmc = calloc(fd_bmc_len, sizeof(*fd_bmc));
    fd_handshaking = calloc(fd_bmc_len, sizeof(*fd_handshaking));
    fleet.nbmcs = o->nbmcs;
    fleet.bmcs = calloc((size_t)o->nbmcs, sizeof(*fleet.bmcs));
    if (fd_bmc == NULL || fd_handshaking == NULL || fleet.bmcs == NULL) {
        fprintf(stderr, "ward-bmcsim: out of memory\n");
        return 1;
    }
    if (mkdir(o->state_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "ward-bmcsim: cannot create %s: %s\n", o->state_dir, strerror(errno));
        return 1;
    }
    struct ward_error err = {0};
    struct sim_tls tls = {0};
    char ca_path[4200] = "";
    if (!o->plain_http) {
        /* In address mode the certificates name every BMC's address. */
        struct ward_buf san = {0};
        int ngroups =
            o->address_base != 0 ? (o->nbmcs + SIM_ADDRESS_GROUP - 1) / SIM_ADDRESS_GROUP : 0;
        struct ward_buf *gsan = calloc((size_t)ngroups + 1, sizeof(*gsan));
        const char **gsans = calloc((size_t)ngroups + 1, sizeof(*gsans));
        if (gsan == NULL || gsans == NULL) {
            fprintf(stderr, "ward-bmcsim: out of memory\n");
            return 1;
        }
        for (int i = 0; o->address_base != 0 && i < o->nbmcs; i++) {
            struct in_addr a = {.s_addr = htonl(o->address_base + (uint32_t)i)};
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &a, ip, sizeof(ip));
            ward_buf_printf(&san, ",IP:%s", ip);
            ward_buf_printf(&gsan[i / SIM_ADDRESS_GROUP], ",IP:%s", ip);
        }
        for (int g = 0; g < ngroups; g++) {
            gsans[g] = gsan[g].data;
        }
        int trc = sim_tls_create(&tls, san.data != NULL ? san.data : "", gsans, ngroups, &err);
        ward_buf_free(&san);
        for (int g = 0; g < ngroups; g++) {
            ward_buf_free(&gsan[g]);
        }
        free(gsan);
        free(gsans);
        if (trc != 0) {
            fprintf(stderr, "ward-bmcsim: %s\n", err.text);
            return 1;
        }
        int rc =
            write_file(o->state_dir, "ca.pem", tls.ca_pem, 0644, true, ca_path, sizeof(ca_path));
        if (rc != 0) {
            fprintf(stderr, "ward-bmcsim: cannot write %s/ca.pem: %s\n", o->state_dir,
                    strerror(-rc));
            return 1;
        }
    }
    /* A random start keeps concurrent simulators (parallel tests) from probing the same
     * ports. */
    int span = SIM_AUTO_PORT_END - SIM_AUTO_PORT_START - o->nbmcs;
    int auto_port =
        SIM_AUTO_PORT_START +
        (span > 0
             ? (int)(((unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL)) % (unsigned)span)
             : 0);
    int shared_port = 0;
    if (o->address_base != 0) {
        shared_port = open_shared_listener(o->base_port);
        if (shared_port < 0) {
            fprintf(stderr,
                    "ward-bmcsim: cannot listen on port %d of the loopback interface: %s "
                    "(address mode binds to device lo)\n",
                    o->base_port, strerror(-shared_port));
            return 1;
        }
        address_base = o->address_base;
    }
    for (int i = 0; i < o->nbmcs; i++) {
        struct sim_bmc *b = &fleet.bmcs[i];
        if (sim_bmc_init(b, i, sim_flavour_find(o->flavour_names[i % o->nflavours]), o) != 0) {
            fprintf(stderr, "ward-bmcsim: out of memory\n");
            return 1;
        }
        int rc;
        if (address_base != 0) {
            char ip[INET_ADDRSTRLEN];
            struct in_addr a = {.s_addr = htonl(address_base + (uint32_t)i)};
            inet_ntop(AF_INET, &a, ip, sizeof(ip));
            b->port = shared_port;
            snprintf(b->address, sizeof(b->address), "%s://%s:%d", o->plain_http ? "http" : "https",
                     ip, shared_port);
            rc = 0;
        } else if (o->base_port > 0) {
            rc = open_listener(b, o->base_port + i);
        } else {
            /* Free ports below the ephemeral range, skipping taken ones: the kernel's own
             * choice (port 0) gets slower with every socket already bound. */
            rc = -EADDRINUSE;
            while (rc == -EADDRINUSE && auto_port < SIM_AUTO_PORT_END) {
                rc = open_listener(b, auto_port++);
            }
            if (rc == -EADDRINUSE) {
                rc = open_listener(b, 0);
            }
        }
        if (rc != 0) {
            fprintf(stderr, "ward-bmcsim: cannot listen for %s on 127.0.0.1:%d: %s\n", b->name,
                    o->base_port > 0 ? o->base_port + i : 0, strerror(-rc));
            return 1;
        }
        snprintf(b->password_file, sizeof(b->password_file), "%s/%s.password", o->state_dir,
                 o->shared_password ? "fleet" : b->name);
        if (o->shared_password && i > 0) {
            memcpy(b->password, fleet.bmcs[0].password, sizeof(b->password));
        } else {
            rc = sim_bmc_set_password(b, b->password, false);
            if (rc != 0) {
                fprintf(stderr, "ward-bmcsim: cannot write %s: %s\n", b->password_file,
                        strerror(-rc));
                return 1;
            }
        }
        /* Starting a large fleet takes a while: honour a stop request meanwhile. */
        if (i % 256 == 255) {
            sigset_t pending;
            sigpending(&pending);
            if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) {
                fprintf(stderr, "ward-bmcsim: stopped while starting\n");
                return 1;
            }
        }
    }

    if (timers_start() != 0) {
        fprintf(stderr, "ward-bmcsim: cannot start the timer thread\n");
        return 1;
    }
    for (int cert = 0; cert < SIM_CERT_COUNT; cert++) {
        if (o->plain_http && cert > 0) {
            break;
        }
        /* Address mode: one good daemon (and thread) per address block, each with the
         * certificate naming its block. */
        int n = cert == 0 ? (tls.ngroups > 0 ? tls.ngroups : o->threads) : 1;
        daemons[cert] = calloc((size_t)n, sizeof(*daemons[cert]));
        for (int k = 0; k < n; k++) {
            daemons[cert][k] = start_daemon(&tls, cert, cert == 0 && tls.ngroups > 0 ? k : -1);
            if (daemons[cert][k] == NULL) {
                fprintf(stderr, "ward-bmcsim: cannot start the HTTP server\n");
                return 1;
            }
        }
        ndaemons[cert] = n;
    }
    int control_port = 0;
    struct MHD_Daemon *control = sim_control_start(o->control_port, &control_port, &err);
    if (control == NULL) {
        fprintf(stderr, "ward-bmcsim: %s\n", err.text);
        return 1;
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epfd < 0 || stopfd < 0) {
        fprintf(stderr, "ward-bmcsim: epoll: %s\n", strerror(errno));
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev);
    if (shared_fd >= 0) {
        ev.data.u32 = SIM_SHARED_LISTENER;
        epoll_ctl(epfd, EPOLL_CTL_ADD, shared_fd, &ev);
    }
    for (int i = 0; i < o->nbmcs && shared_fd < 0; i++) {
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fleet.bmcs[i].listen_fd, &ev) != 0) {
            fprintf(stderr, "ward-bmcsim: epoll_ctl: %s\n", strerror(errno));
            return 1;
        }
    }
    if (pthread_create(&acceptor, NULL, acceptor_main, NULL) != 0) {
        fprintf(stderr, "ward-bmcsim: cannot start the acceptor thread\n");
        return 1;
    }

    char *fj = fleet_json(o->plain_http ? NULL : ca_path, control_port);
    char fleet_path[4200] = "";
    int rc = fj != NULL ? write_file(o->state_dir, "fleet.json", fj, 0644, true, fleet_path,
                                     sizeof(fleet_path))
                        : -ENOMEM;
    free(fj);
    if (rc != 0) {
        fprintf(stderr, "ward-bmcsim: cannot write fleet.json: %s\n", strerror(-rc));
        return 1;
    }
    printf("ready bmcs=%d control=http://127.0.0.1:%d fleet=%s\n", o->nbmcs, control_port,
           fleet_path);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);

    atomic_store(&stopping, true);
    uint64_t one = 1;
    if (write(stopfd, &one, sizeof(one)) != sizeof(one)) {
        fprintf(stderr, "ward-bmcsim: cannot wake the acceptor\n");
    }
    pthread_join(acceptor, NULL);
    MHD_stop_daemon(control);
    timers_stop();
    for (int cert = 0; cert < SIM_CERT_COUNT; cert++) {
        for (int k = 0; k < ndaemons[cert]; k++) {
            MHD_stop_daemon(daemons[cert][k]);
        }
        free(daemons[cert]);
    }
    for (int i = 0; i < o->nbmcs; i++) {
        if (fleet.bmcs[i].listen_fd >= 0) {
            close(fleet.bmcs[i].listen_fd);
        }
        sim_bmc_destroy(&fleet.bmcs[i]);
    }
    if (shared_fd >= 0) {
        close(shared_fd);
    }
    close(epfd);
    close(stopfd);
    free(fleet.bmcs);
    free(fd_bmc);
    free(fd_handshaking);
    sim_tls_free(&tls);
    fprintf(stderr, "ward-bmcsim: stopped on signal %d\n", sig);
    return 0;
}
