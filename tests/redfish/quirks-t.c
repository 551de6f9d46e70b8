/* SPDX-License-Identifier: Apache-2.0 */
/* Vendor quirk hooks: loading, the sandbox, selection, and each shipped hook on its case. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redfish/quirks.h"
#include "tap/basic.h"

static const char *dir;

static const char *write_lua(const char *name, const char *text)
{
    static char path[8][600];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, 600, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f == NULL) {
        sysbail("write %s", p);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static struct ward_rf_quirks *load(const char *name, const char *text, struct ward_error *err)
{
    return ward_rf_quirks_load(write_lua(name, text), err);
}

/* Run the response hooks over (status, body) and return "status|body|retry". */
static const char *respond(struct ward_rf_quirks *q, const struct ward_rf_ident *id, const char *op,
                           const char *method, const char *path, long status, const char *body)
{
    static char out[2048];
    cJSON *doc = body != NULL ? cJSON_Parse(body) : NULL;
    double retry = 0;
    ward_rf_quirks_response(q, id, op, method, path, &status, &doc, &retry);
    char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
    snprintf(out, sizeof(out), "%ld|%s|%g", status, text != NULL ? text : "nil", retry);
    free(text);
    cJSON_Delete(doc);
    return out;
}

/* The response hook selected by `model` fails: the answer {"a":1} stays as it came. */
static void unchanged(struct ward_rf_quirks *q, const char *model, const char *what)
{
    struct ward_rf_ident id = {"Acme", model, "1.0", "/s"};
    is_string("200|{\"a\":1}|0", respond(q, &id, "get", "GET", "/x", 200, "{\"a\":1}"), "%s", what);
}

/* Same JSON, whatever the key order (Lua tables have none). */
static bool same_json(const char *wanted, const char *seen)
{
    cJSON *a = cJSON_Parse(wanted);
    cJSON *b = seen != NULL ? cJSON_Parse(seen) : NULL;
    bool same = a != NULL && b != NULL && cJSON_Compare(a, b, true);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return same;
}

/* The body part of respond()'s "status|body|retry". */
static const char *body_of(const char *r)
{
    static char b[2048];
    const char *p = strchr(r, '|');
    snprintf(b, sizeof(b), "%s", p != NULL ? p + 1 : "");
    char *e = strrchr(b, '|');
    if (e != NULL) {
        *e = '\0';
    }
    return b;
}

int main(void)
{
    plan(54);
    dir = test_tmpdir();
    char logpath[600];
    snprintf(logpath, sizeof(logpath), "%s/log", dir);
    FILE *logf = fopen(logpath, "w+");
    ward_log_set_stream(logf);
    struct ward_error err = {0};

    /* loading */
    ok(load("syntax.lua", "return {quirks = {\n{name = 'x',\n", &err) == NULL,
       "a syntax error is refused");
    contains(err.text, "syntax.lua:3", "with file and line (%s)", err.text);
    ok(load("noret.lua", "local x = 1\n", &err) == NULL, "a file returning nothing is refused");
    contains(err.text, "must return a table", "with a reason");
    ok(load("nohook.lua", "return {quirks = {{name = 'x', match = {}}}}", &err) == NULL,
       "an entry without hooks is refused");
    contains(err.text, "quirks[1] has neither", "with a reason naming it (%s)", err.text);
    ok(load("io.lua", "local f = io.open('/etc/passwd')\nreturn {quirks = {}}", &err) == NULL,
       "io is not available");
    ok(load("loop.lua", "while true do end", &err) == NULL, "an endless main chunk is stopped");
    contains(err.text, "instruction budget", "by the instruction budget (%s)", err.text);

    /* the sandbox at call time: failures leave the answer as it was */
    struct ward_rf_quirks *q = load(
        "hostile.lua",
        "return {quirks = {\n"
        " {name = 'spin', match = {model = '^Spin$'}, response = function(req, resp)\n"
        "    while true do end end},\n"
        " {name = 'hog', match = {model = '^Hog$'}, response = function(req, resp)\n"
        "    local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) end end},\n"
        " {name = 'boom', match = {model = '^Boom$'}, response = function(req, resp)\n"
        "    resp.status = 204 error('boom') end},\n"
        " {name = 'pcall', match = {model = '^Pcall$'}, response = function(req, resp)\n"
        "    pcall(function() while true do end end) resp.status = 299 return true end},\n"
        " {name = 'sel', match = {manufacturer = '^Acme', firmware = '^2%.'},\n"
        "   response = function(req, resp) resp.status = 299 return true end},\n"
        " {name = 'pattern', match = {model = '^Pattern$'}, response = function(req, resp)\n"
        "    string.find(string.rep('a', 2000), '.-.-b') resp.status = 299 return true end},\n"
        " {name = 'amplify', match = {model = '^Amplify$'}, response = function(req, resp)\n"
        "    local s = string.rep('x', 2 << 20)\n"
        "    for i = 1, 150000 do s:find('y', 1, true) end resp.status = 299 return true end},\n"
        " {name = 'body', match = {model = '^Body$'}, request = function(req)\n"
        "    req.body.Added = req.current.Id .. req.system return true end},\n"
        " {name = 'mixed', match = {model = '^Mixed$'}, request = function(req)\n"
        "    req.body = {1, 2, x = 3} return true end},\n"
        " {name = 'nan', match = {model = '^Nan$'}, response = function(req, resp)\n"
        "    resp.body = {v = 0/0} return true end},\n"
        " {name = 'edit', match = {model = '^Edit$'}, response = function(req, resp)\n"
        "    resp.body.Edited = true return true end},\n"
        " {name = 'dag', match = {model = '^Dag$'}, response = function(req, resp)\n"
        "    local x = {} for i = 1, 18 do x = {x, x} end resp.body = x return true end},\n"
        /* fills the state to its cap, frees a little (enough for the call, not for the
           body), then reads the body under pcall and says it changed something */
        " {name = 'full', match = {model = '^Full$'}, request = function(req)\n"
        "    local hog, n = {}, 0\n"
        "    for _, size in ipairs({4000, 400, 60}) do\n"
        "      pcall(function() while true do n = n + 1 hog[n] = string.rep('x', size) .. n end "
        "end)\n"
        "    end\n"
        "    pcall(function() while true do n = n + 1 hog[n] = {} end end)\n"
        "    for i = n - 40, n do hog[i] = nil end\n"
        "    return not pcall(function() return req.body end) end},\n"
        " {name = 'huge', match = {model = '^Huge$'}, response = function(req, resp)\n"
        "    resp.body = {v = 1.7976931348623157e308} return true end},\n"
        " {name = 'wide', match = {model = '^Wide$'}, response = function(req, resp)\n"
        "    local x, t = string.rep('x', 1 << 20), {}\n"
        "    for i = 1, 20 do t[i] = x end resp.body = t return true end},\n"
        " {name = 'shared', match = {model = '^Shared$'}, response = function(req, resp)\n"
        "    local s = {a = 1, b = {2, 3}} resp.body = {x = s, y = {s}} return true end},\n"
        " {name = 'deepshare', match = {model = '^Deepshare$'}, response = function(req, resp)\n"
        "    local t = {} for i = 1, 31 do t = {t} end resp.body = {x = t, y = {t}}\n"
        "    return true end},\n"
        " {name = 'nul', match = {model = '^Nul$'}, response = function(req, resp)\n"
        "    resp.body = {v = 'a\\0b'} return true end},\n"
        " {name = 'bigint', match = {model = '^Bigint$'}, response = function(req, resp)\n"
        "    resp.body = {v = 4503599627370497} return true end},\n"
        " {name = 'sparse', match = {model = '^Sparse$'}, response = function(req, resp)\n"
        "    resp.body = {[404] = 'x'} return true end},\n"
        " {name = 'ctrl', match = {model = '^Ctrl$'}, response = function(req, resp)\n"
        "    resp.body = {string.rep('\\1', 3 << 20)} return true end},\n"
        "}}\n",
        &err);
    ok(q != NULL, "a file of hooks loads (%s)", err.text);
    is_int(21, ward_rf_quirks_count(q), "twenty-one entries");
    ok(ward_rf_quirks_by_firmware(q), "one of them selects by firmware");
    unchanged(q, "Spin", "an endless hook is stopped, the answer unchanged");
    unchanged(q, "Hog", "a memory hog is stopped, the answer unchanged");
    struct ward_rf_ident boom = {"Acme", "Boom", "1.0", "/s"};
    is_string("500|nil|0", respond(q, &boom, "get", "GET", "/x", 500, NULL),
              "an erroring hook changes nothing, even what it set before failing");
    struct ward_rf_ident pc = {"Acme", "Pcall", "1.0", "/s"};
    is_string("200|nil|0", respond(q, &pc, "get", "GET", "/x", 200, NULL),
              "pcall cannot swallow the budget");
    struct ward_rf_ident pat = {"Acme", "Pattern", "1.0", "/s"};
    is_string("200|nil|0", respond(q, &pat, "get", "GET", "/x", 200, NULL),
              "a backtracking pattern counts against the budget: stopped, the answer unchanged");
    struct ward_rf_ident amp = {"Acme", "Amplify", "1.0", "/s"};
    is_string("200|nil|0", respond(q, &amp, "get", "GET", "/x", 200, NULL),
              "a hook within its instructions but past its second (150,000 scans of 2 MiB) "
              "is stopped");
    struct ward_rf_ident sel = {"Acme Corp", "Other", "2.5", "/s"};
    is_string("299|nil|0", respond(q, &sel, "get", "GET", "/x", 200, NULL),
              "manufacturer and firmware patterns select a hook");
    struct ward_rf_ident nosel = {"Acme Corp", "Other", "3.0", "/s"};
    is_string("200|nil|0", respond(q, &nosel, "get", "GET", "/x", 200, NULL),
              "a firmware that does not match leaves it out");
    struct ward_rf_ident body = {"Acme", "Body", "1", "/redfish/v1/Systems/1"};
    cJSON *cur = cJSON_Parse("{\"Id\":\"sys\"}");
    char *nb = ward_rf_quirks_request(q, &body, "patch", "PATCH", "/x", "{\"a\":true}", cur);
    ok(same_json("{\"a\":true,\"Added\":\"sys/redfish/v1/Systems/1\"}", nb),
       "a request hook rewrites the body with current and system (%s)", nb);
    free(nb);
    cJSON_Delete(cur);
    /* what JSON cannot hold fails the hook; nothing of the table is sent in its place */
    struct ward_rf_ident mixed = {"Acme", "Mixed", "1", "/s"};
    nb = ward_rf_quirks_request(q, &mixed, "patch", "PATCH", "/x", "{\"a\":true}", NULL);
    ok(nb == NULL, "a body mixing a list and keys fails the hook, not cut to the list (%s)",
       nb != NULL ? nb : "unchanged");
    free(nb);
    unchanged(q, "Nan", "a body holding NaN fails the hook, not sent as null");
    /* what JSON can hold comes back as it went in */
    struct ward_rf_ident edit = {"Acme", "Edit", "1", "/s"};
    const char *r = respond(q, &edit, "get", "GET", "/x", 200,
                            "{\"Slots\":[\"USB1\",null,null,\"USB4\",null,null],\"Max\":1e308}");
    ok(same_json("{\"Slots\":[\"USB1\",null,null,\"USB4\"],\"Max\":1e308,\"Edited\":true}",
                 body_of(r)) &&
           strstr(r, "1e+308") != NULL,
       "an edited body keeps a list's inner nulls and a large double (%s)", r);
    unchanged(q, "Huge", "the largest doubles, which cJSON would print as infinity, fail the hook");
    unchanged(q, "Wide", "one 1 MiB string 20 times (20 MiB of JSON) fails the hook");
    unchanged(q, "Ctrl", "3 MiB of control characters (18 MiB once escaped) fails the hook");
    unchanged(q, "Nul", "a string with a NUL byte fails the hook, not cut at it");
    unchanged(q, "Bigint", "an integer beyond 2^52 fails the hook, not rounded");
    unchanged(q, "Sparse", "{[404] = x} fails the hook, not 403 nulls");
    struct ward_rf_ident shared = {"Acme", "Shared", "1", "/s"};
    ok(same_json("{\"x\":{\"a\":1,\"b\":[2,3]},\"y\":[{\"a\":1,\"b\":[2,3]}]}",
                 body_of(respond(q, &shared, "get", "GET", "/x", 200, "{\"a\":1}"))),
       "a table referenced twice is written out twice");
    unchanged(q, "Deepshare", "a table whose second reference nests deeper than 32 fails the hook");
    unchanged(q, "Dag", "a body of 2^19 values built from 18 small tables fails the hook");
    /* a read of the body that meets the memory cap leaves it as it came */
    char big[8192] = "{";
    for (int i = 0; i < 300; i++) {
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "%s\"key%d\":%d", i ? "," : "", i,
                 i);
    }
    strcat(big, "}");
    struct ward_rf_ident full = {"Acme", "Full", "1", "/s"};
    nb = ward_rf_quirks_request(q, &full, "patch", "PATCH", "/x", big, NULL);
    ok(nb != NULL && same_json(big, nb),
       "a body whose read failed at the memory cap is sent as it came (%.40s)",
       nb != NULL ? nb : "the read did not fail");
    free(nb);
    ward_rf_quirks_free(q);

    /* Documents reach a hook when it reads them; one a hook never reads or sets is kept as
     * it came, one it sets without reading is replaced. */
    q = load(
        "lazy.lua",
        "return {quirks = {\n"
        " {name = 'status', match = {model = '^Status$'}, response = function(req, resp)\n"
        "    resp.status = 299 return true end},\n"
        " {name = 'drop', match = {model = '^Drop$'}, response = function(req, resp)\n"
        "    resp.body = nil return true end},\n"
        " {name = 'readdrop', match = {model = '^ReadDrop$'}, response = function(req, resp)\n"
        "    local seen = resp.body.a resp.body = nil resp.status = 200 + seen return true end},\n"
        " {name = 'edit', match = {model = '^Edit$'}, response = function(req, resp)\n"
        "    resp.body.b = resp.body.a + 1 return true end},\n"
        " {name = 'touch', match = {model = '^Touch$'}, request = function(req)\n"
        "    return req.method == 'PATCH' end},\n"
        "}}\n",
        &err);
    ok(q != NULL, "hooks that read, set or leave the documents load (%s)", err.text);
    ok(!ward_rf_quirks_by_firmware(q), "none of them selects by firmware");
    struct ward_rf_ident lz = {"Acme", "Status", "1", "/s"};
    is_string("299|{\"a\":1}|0", respond(q, &lz, "get", "GET", "/x", 200, "{\"a\":1}"),
              "a hook that changes the status only keeps the body as it came");
    lz.model = "Drop";
    is_string("200|nil|0", respond(q, &lz, "get", "GET", "/x", 200, "{\"a\":1}"),
              "a hook that sets the body to nil without reading it drops it");
    lz.model = "ReadDrop";
    is_string("201|nil|0", respond(q, &lz, "get", "GET", "/x", 200, "{\"a\":1}"),
              "a hook that reads the body, then drops it, drops it");
    lz.model = "Edit";
    ok(same_json("{\"a\":1,\"b\":2}",
                 body_of(respond(q, &lz, "get", "GET", "/x", 200, "{\"a\":1}"))),
       "a hook that edits the body it read returns the edit");
    lz.model = "Touch";
    nb = ward_rf_quirks_request(q, &lz, "patch", "PATCH", "/x", "{\"a\":true}", NULL);
    is_string("{\"a\":true}", nb, "a request hook that leaves the body keeps it");
    free(nb);
    ward_rf_quirks_free(q);

    /* the shipped hooks */
    char path[600];
    snprintf(path, sizeof(path), "%s/plugins/redfish/quirks.lua", getenv("WARD_SRCDIR"));
    q = ward_rf_quirks_load(path, &err);
    ok(q != NULL, "the shipped quirks load (%s)", err.text);
    ok(!ward_rf_quirks_by_firmware(q), "none of the shipped ones selects by firmware, so "
                                       "discovery need not read the manager");
    struct ward_rf_ident any = {"Contoso", "3500", "1.0", "/redfish/v1/Systems/1"};
    ok(same_json("{\"Inserted\":false,\"ConnectedVia\":\"NotConnected\",\"Image\":\"\"}",
                 body_of(respond(q, &any, "eject_media", "GET", "/m/CD", 200,
                                 "{\"Inserted\":true,\"ConnectedVia\":\"NotConnected\","
                                 "\"Image\":\"\"}"))),
       "cd-notconnected-is-free frees the slot");
    cur = cJSON_Parse("{\"Boot\":{\"BootSourceOverrideTarget\":\"None\"}}");
    nb = ward_rf_quirks_request(
        q, &any, "set_boot_once", "PATCH", "/redfish/v1/Systems/1",
        "{\"Boot\":{\"BootSourceOverrideTarget\":\"Cd\",\"BootSourceOverrideMode\":\"UEFI\"}}",
        cur);
    is_string("{\"Boot\":{\"BootSourceOverrideTarget\":\"Cd\"}}", nb,
              "no-boot-override-mode drops the mode the system lacks");
    free(nb);
    cJSON_Delete(cur);
    ok(same_json("{\"ManagerType\":\"BMC\",\"VirtualMedia\":{\"@odata.id\":\"/redfish/v1/"
                 "Systems/1/VirtualMedia\"}}",
                 body_of(respond(q, &any, "insert_media", "GET", "/redfish/v1/Managers/1", 200,
                                 "{\"ManagerType\":\"BMC\"}"))),
       "virtual-media-moved-to-systems points the manager at the system");
    struct ward_rf_ident dell = {"DellLike Inc.", "R650", "6.10", "/s"};
    const char *refused = "{\"error\":{\"@Message.ExtendedInfo\":[{\"Message\":\"No virtual "
                          "media is currently connected: nothing to eject.\"}]}}";
    is_string("204|nil|0",
              respond(q, &dell, "eject_media", "POST", "/m/CD/Actions/VirtualMedia.EjectMedia", 400,
                      refused),
              "eject-empty-refused turns the refusal into success");
    ok(strncmp(respond(q, &any, "eject_media", "POST", "/m/CD/Actions/VirtualMedia.EjectMedia", 400,
                       refused),
               "400|", 4) == 0,
       "but only for the vendor it is selected for");
    struct ward_rf_ident smc = {"SupermicroLike", "SYS", "01.73", "/s"};
    is_string("409|nil|1",
              respond(q, &smc, "power", "POST", "/s/Actions/ComputerSystem.Reset", 409, NULL),
              "poweron-409-after-off asks to retry in 1 s");
    ward_rf_quirks_free(q);

    fflush(logf);
    char *log = test_slurp(logpath);
    contains(log != NULL ? log : "", "quirk response hook failed", "failed hooks are logged");
    contains(log != NULL ? log : "", "time slice exhausted: ran 1 s",
             "with the limit that stopped them");
    contains(log != NULL ? log : "", "req.body keys must be strings (or a plain list)",
             "and what JSON could not hold");
    contains(log != NULL ? log : "", "resp.body holds more than 100000 values",
             "and how much it may hold");
    contains(log != NULL ? log : "", "resp.body holds more than 16 MiB of text",
             "in values and in text");
    free(log);
    ward_log_set_stream(NULL);
    fclose(logf);
    return 0;
}
