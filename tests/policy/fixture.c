/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "fixture.h"
#include "../tap/basic.h"

double fixture_now = 1000000.0;

double fixture_clock(void *arg)
{
    (void)arg;
    return fixture_now;
}

static int sink_commit(void *self, const struct ward_policy_commit *c, long long *new_version,
                       struct ward_error *err)
{
    struct fixture_sink *s = self;
    if (s->fail) {
        return ward_error_set(err, -ESTALE, "version conflict (test sink)");
    }
    s->commits++;
    *new_version = c->expected_version + 1;
    ward_buf_printf(&s->history, "%s/%s %s %s->%s %s %s v=%lld at=%.0f\n", c->kind, c->name,
                    c->dimension, c->from, c->to, c->trigger, c->actor, *new_version,
                    c->entered_at);
    return 0;
}

void fixture_sink_init(struct fixture_sink *s)
{
    memset(s, 0, sizeof(*s));
    s->sink.self = s;
    s->sink.commit = sink_commit;
}

void fixture_on_event(void *arg, const struct ward_policy_event *ev)
{
    struct fixture_events *e = arg;
    e->count++;
    ward_buf_printf(&e->text, "%s %s/%s: %s\n", ev->type, ev->kind ? ev->kind : "-",
                    ev->name ? ev->name : "-", ev->message ? ev->message : "");
}

/* ---------------------------------------------------------------- fake BMC */

enum op_kind { OP_CONNECT, OP_INVENTORY, OP_POWER, OP_POWER_STATE, OP_MEDIA, OP_BOOT, OP_RESET };

struct op {
    ev_timer t;
    struct fakebmc *f;
    struct ward_async *a;
    enum op_kind kind;
    char host[64];
    char arg[64];
};

struct handle {
    struct fakebmc *f;
    char host[64];
};

static void track(struct fakebmc *f, const char *host, int delta)
{
    if (delta > 0) {
        f->active++;
        if (f->active > f->max_active) {
            f->max_active = f->active;
        }
        unsigned same = 1;
        for (size_t i = 0; i < 64; i++) {
            same += f->active_hosts[i][0] != '\0' && strcmp(f->active_hosts[i], host) == 0;
        }
        if (same > f->max_same_host) {
            f->max_same_host = same;
        }
        for (size_t i = 0; i < 64; i++) {
            if (f->active_hosts[i][0] == '\0') {
                snprintf(f->active_hosts[i], sizeof(f->active_hosts[i]), "%s", host);
                break;
            }
        }
        return;
    }
    f->active--;
    for (size_t i = 0; i < 64; i++) {
        if (strcmp(f->active_hosts[i], host) == 0) {
            f->active_hosts[i][0] = '\0';
            break;
        }
    }
}

static int push_result(lua_State *L, void *arg)
{
    struct op *op = arg;
    struct fakebmc *f = op->f;
    switch (op->kind) {
    case OP_CONNECT:
        if (f->fail_connect) {
            lua_pushnil(L);
            lua_pushliteral(L, "connection refused by 10.0.0.5:443");
            return 2;
        }
        f->connects++;
        break;
    case OP_INVENTORY:
        if (f->fail_inventory) {
            lua_pushnil(L);
            lua_pushliteral(L, "Systems/1: HTTP 500");
            return 2;
        }
        lua_createtable(L, 0, 8);
        lua_pushliteral(L, "Acme");
        lua_setfield(L, -2, "manufacturer");
        lua_pushliteral(L, "R1");
        lua_setfield(L, -2, "model");
        lua_pushfstring(L, "SN-%s", op->host);
        lua_setfield(L, -2, "serial");
        lua_pushstring(L, f->power);
        lua_setfield(L, -2, "power_state");
        lua_pushinteger(L, 32);
        lua_setfield(L, -2, "cpu_count");
        lua_createtable(L, 1, 0);
        lua_pushliteral(L, "52:54:00:00:00:01");
        lua_rawseti(L, -2, 1);
        lua_setfield(L, -2, "macs");
        return 1;
    case OP_POWER:
        f->restarts += strcmp(op->arg, "ForceRestart") == 0;
        snprintf(f->power, sizeof(f->power), "%s",
                 strcmp(op->arg, "ForceOff") == 0 || strcmp(op->arg, "GracefulShutdown") == 0
                     ? "Off"
                     : "On");
        break;
    case OP_POWER_STATE:
        if (f->fail_power_state > 0) {
            f->fail_power_state--;
            lua_pushnil(L);
            lua_pushliteral(L, "Systems/1: HTTP 503");
            return 2;
        }
        lua_pushstring(L, f->power);
        return 1;
    case OP_MEDIA:
        if (f->fail_eject && strcmp(op->arg, "eject") == 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "VirtualMedia: HTTP 503");
            return 2;
        }
        if (f->fail_boot && strcmp(op->arg, "insert") == 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "VirtualMedia: HTTP 409");
            return 2;
        }
        break;
    case OP_BOOT:
        break;
    case OP_RESET:
        f->resets++;
        break;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void op_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct op *op = (struct op *)w;
    track(op->f, op->host, -1);
    ward_async_complete(op->a, push_result, op);
    free(op);
}

static void unhang(struct op *op)
{
    for (size_t i = 0; i < 64; i++) {
        if (op->f->hung[i] == op) {
            op->f->hung[i] = NULL;
        }
    }
}

void fakebmc_release(struct fakebmc *f)
{
    for (size_t i = 0; i < 64; i++) {
        struct op *op = f->hung[i];
        if (op != NULL) {
            f->hung[i] = NULL;
            ev_timer_start(f->loop, &op->t);
        }
    }
}

static void op_cancel(void *arg)
{
    struct op *op = arg;
    unhang(op);
    ev_timer_stop(op->f->loop, &op->t);
    op->f->cancelled++;
    track(op->f, op->host, -1);
    free(op);
}

static int start_op(lua_State *L, enum op_kind kind, const char *arg)
{
    struct handle *h = luaL_checkudata(L, 1, "fakebmc.handle");
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return luaL_error(L, "out of memory");
    }
    op->f = h->f;
    op->kind = kind;
    snprintf(op->host, sizeof(op->host), "%s", h->host);
    snprintf(op->arg, sizeof(op->arg), "%s", arg != NULL ? arg : "");
    op->a = ward_async_begin(L, op_cancel, op);
    if (op->a == NULL) {
        free(op);
        return ward_async_refuse(L);
    }
    h->f->calls++;
    track(h->f, op->host, 1);
    ev_timer_init(&op->t, op_fire, 0, 0);
    if (!h->f->hang) {
        ev_timer_start(h->f->loop, &op->t);
    } else {
        for (size_t i = 0; i < 64; i++) {
            if (h->f->hung[i] == NULL) {
                h->f->hung[i] = op;
                break;
            }
        }
    }
    return ward_async_yield(L, op->a);
}

static int m_connect(lua_State *L)
{
    return start_op(L, OP_CONNECT, NULL);
}
static int m_inventory(lua_State *L)
{
    return start_op(L, OP_INVENTORY, NULL);
}
static int m_power(lua_State *L)
{
    return start_op(L, OP_POWER, luaL_checkstring(L, 2));
}
static int m_power_state(lua_State *L)
{
    return start_op(L, OP_POWER_STATE, NULL);
}
static int m_eject(lua_State *L)
{
    return start_op(L, OP_MEDIA, "eject");
}
static int m_insert(lua_State *L)
{
    luaL_checkstring(L, 2);
    return start_op(L, OP_MEDIA, "insert");
}
static int m_boot_once(lua_State *L)
{
    return start_op(L, OP_BOOT, luaL_checkstring(L, 2));
}
static int m_clear_boot(lua_State *L)
{
    return start_op(L, OP_BOOT, "none");
}
static int m_reset(lua_State *L)
{
    return start_op(L, OP_RESET, NULL);
}
static int m_close(lua_State *L)
{
    luaL_checkudata(L, 1, "fakebmc.handle");
    lua_pushboolean(L, 1);
    return 1;
}

static int fake_open(void *self, lua_State *L, const char *host, const char *spec_json)
{
    struct fakebmc *f = self;
    if (strstr(spec_json, "\"bmc\"") == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "spec has no bmc");
        return 2;
    }
    struct handle *h = lua_newuserdatauv(L, sizeof(*h), 0);
    h->f = f;
    snprintf(h->host, sizeof(h->host), "%s", host);
    if (luaL_newmetatable(L, "fakebmc.handle")) {
        static const luaL_Reg methods[] = {
            {"connect", m_connect},
            {"inventory", m_inventory},
            {"power", m_power},
            {"power_state", m_power_state},
            {"eject_media", m_eject},
            {"insert_media", m_insert},
            {"set_boot_once", m_boot_once},
            {"clear_boot_override", m_clear_boot},
            {"reset", m_reset},
            {"close", m_close},
            {NULL, NULL},
        };
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    return 1;
}

void fakebmc_init(struct fakebmc *f, struct ev_loop *loop)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->drv.self = f;
    f->drv.open = fake_open;
    snprintf(f->power, sizeof(f->power), "Off");
}

void fixture_options(struct ward_policy_options *o, struct fakebmc *f, struct fixture_events *ev)
{
    struct ward_error err = {0};
    if (ward_policy_options_init(o, &err) != 0) {
        bail("options: %s", err.text);
    }
    o->now = fixture_clock;
    o->stuck_interval = 0;
    o->memory_limit = 8u << 20;
    o->instructions = 5000000;
    o->queue.jitter = 0;
    o->bmc_driver = f != NULL ? &f->drv : NULL;
    if (ev != NULL) {
        o->on_event = fixture_on_event;
        o->event_arg = ev;
    }
}

void fixture_settle(struct ev_loop *loop)
{
    for (int i = 0; i < 100000 && ev_run(loop, EVRUN_NOWAIT); i++) {
    }
}

void fixture_write(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        sysbail("write %s", path);
    }
}
