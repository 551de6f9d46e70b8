/* SPDX-License-Identifier: Apache-2.0 */
/* ward-bmcsim, generic flavour: start-up output, auth and sessions, power, boot override,
 * virtual media and the control API's counters. Time-dependent behaviour is driven by the
 * simulator's clock (POST /control/clock), never by sleeping. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tap/basic.h"
#include "simclient.h"

#define SYS "/redfish/v1/Systems/437XR1138R2"
#define CD SYS "/VirtualMedia/CD1"

int main(void)
{
    plan(91);
    struct sim s;
    const char *args[] = {
        "--bmcs", "2", "--power-delay-ms", "5000", "--session-timeout", "60", "--max-sessions",
        "3",      NULL};
    sim_start(&s, args);

    /* fleet.json and the files it names */
    cJSON *bmcs = cJSON_GetObjectItem(s.fleet, "bmcs");
    is_int(2, cJSON_GetArraySize(bmcs), "fleet.json lists both BMCs");
    is_string("generic", json_str(s.fleet, "bmcs/0/flavour"), "flavour listed");
    is_string("admin", json_str(s.fleet, "bmcs/0/username"), "username listed");
    contains(sim_addr(&s, 0), "https://127.0.0.1:", "address is HTTPS on loopback");
    ok(strcmp(sim_addr(&s, 0), sim_addr(&s, 1)) != 0, "each BMC has its own address");
    struct stat st;
    ok(stat(json_str(s.fleet, "bmcs/0/password_file"), &st) == 0 && (st.st_mode & 0777) == 0600,
       "password file is mode 0600");
    lacks(s.child.out.data, sim_pass(&s, 0), "password never printed");
    char *fj = cJSON_PrintUnformatted(s.fleet);
    lacks(fj, sim_pass(&s, 0), "password not in fleet.json");
    free(fj);
    ok(stat(s.ca, &st) == 0, "ca.pem written");

    /* service root is public, everything else needs credentials */
    struct http_result r = sim_http(&s, 0, "GET", "/redfish/v1/", NULL, NULL, NULL, 10);
    is_int(200, r.status, "service root without credentials");
    is_string("/redfish/v1/Systems", json_str(r.json, "Systems/@odata.id"), "root links Systems");
    is_string("/redfish/v1/SessionService/Sessions", json_str(r.json, "Links/Sessions/@odata.id"),
              "root links Sessions");
    http_free(&r);
    r = sim_http(&s, 0, "GET", SYS, NULL, NULL, NULL, 10);
    is_int(401, r.status, "system without credentials: 401");
    ok(json_at(r.json, "error/@Message.ExtendedInfo/0/MessageId") != NULL,
       "401 carries a Redfish error body");
    http_free(&r);
    r = sim_http(&s, 0, "GET", SYS, NULL, "basic", NULL, 10);
    is_int(200, r.status, "basic auth accepted");
    ok(http_header(&r, "ETag") != NULL, "resource has an ETag");
    is_string("Off", json_str(r.json, "PowerState"), "starts powered off");
    http_free(&r);

    /* sessions */
    char bad[256];
    snprintf(bad, sizeof(bad), "{\"UserName\":\"admin\",\"Password\":\"wrong\"}");
    r = sim_http(&s, 0, "POST", "/redfish/v1/SessionService/Sessions", bad, NULL, NULL, 10);
    is_int(401, r.status, "login with a bad password: 401");
    http_free(&r);
    char *tok = sim_login(&s, 0);
    ok(tok != NULL, "login returns X-Auth-Token");
    r = sim_http(&s, 0, "GET", SYS, NULL, tok, NULL, 10);
    is_int(200, r.status, "token accepted");
    http_free(&r);
    char *t2 = sim_login(&s, 0);
    char *t3 = sim_login(&s, 0);
    ok(t2 != NULL && t3 != NULL, "three sessions allowed");
    char body[256];
    snprintf(body, sizeof(body), "{\"UserName\":\"admin\",\"Password\":\"%s\"}", sim_pass(&s, 0));
    r = sim_http(&s, 0, "POST", "/redfish/v1/SessionService/Sessions", body, NULL, NULL, 10);
    is_int(503, r.status, "fourth session: 503");
    contains(json_str(r.json, "error/@Message.ExtendedInfo/0/MessageId"), "SessionLimitExceeded",
             "503 says the session limit is reached");
    http_free(&r);
    /* log one out by its Location */
    r = sim_http(&s, 0, "POST", "/redfish/v1/SessionService/Sessions", body, NULL, NULL, 10);
    http_free(&r);
    r = sim_http(&s, 0, "GET", "/redfish/v1/SessionService/Sessions", NULL, t3, NULL, 10);
    is_int(3, (long long)json_num(r.json, "Members@odata.count"), "sessions collection lists 3");
    const char *loc = json_str(r.json, "Members/2/@odata.id");
    char where[256];
    snprintf(where, sizeof(where), "%s", loc != NULL ? loc : "");
    http_free(&r);
    r = sim_http(&s, 0, "DELETE", where, NULL, t3, NULL, 10);
    is_int(204, r.status, "DELETE session logs out");
    http_free(&r);
    r = sim_http(&s, 0, "GET", SYS, NULL, t3, NULL, 10);
    is_int(401, r.status, "logged-out token refused");
    http_free(&r);
    free(t3);
    t3 = sim_login(&s, 0);
    ok(t3 != NULL, "a freed slot can be used again");
    is_int(1, (long long)sim_counter(&s, 0, "logouts"), "control API counts the logout");
    is_int(3, (long long)sim_counter(&s, 0, "active_sessions"), "control API: 3 active sessions");
    /* idle sessions expire: keep t3 alive, let the others lapse */
    is_int(200, sim_control_post(&s, "/control/clock", "{\"advance_ms\":40000}"), "clock +40s");
    r = sim_http(&s, 0, "GET", SYS, NULL, t3, NULL, 10);
    is_int(200, r.status, "session used within the timeout still works");
    http_free(&r);
    sim_control_post(&s, "/control/clock", "{\"advance_ms\":30000}");
    r = sim_http(&s, 0, "GET", SYS, NULL, tok, NULL, 10);
    is_int(401, r.status, "idle session expired after the timeout");
    http_free(&r);
    r = sim_http(&s, 0, "GET", SYS, NULL, t3, NULL, 10);
    is_int(200, r.status, "recently used session still alive");
    http_free(&r);
    free(tok);
    free(t2);

    /* boot override, then power on: PoweringOn until the delay has passed, then the one-time
     * override is consumed by that boot */
    r = sim_http(&s, 0, "PATCH", SYS,
                 "{\"Boot\":{\"BootSourceOverrideTarget\":\"Cd\","
                 "\"BootSourceOverrideEnabled\":\"Once\",\"BootSourceOverrideMode\":\"UEFI\"}}",
                 t3, NULL, 10);
    is_int(204, r.status, "PATCH boot override");
    http_free(&r);
    r = sim_http(&s, 0, "PATCH", SYS, "{\"Boot\":{\"BootSourceOverrideTarget\":\"Floppy\"}}", t3,
                 NULL, 10);
    is_int(400, r.status, "target not in AllowableValues: 400");
    contains(json_str(r.json, "error/@Message.ExtendedInfo/0/MessageId"), "PropertyValueNotInList",
             "error names the problem");
    http_free(&r);
    r = sim_http(&s, 0, "PATCH", SYS, "{\"Boot\":{}}", t3, "If-Match: \"stale\"", 10);
    is_int(412, r.status, "stale If-Match: 412");
    http_free(&r);
    r = sim_http(&s, 0, "POST", CD "/Actions/VirtualMedia.InsertMedia",
                 "{\"Image\":\"http://10.0.0.1/boot.iso\",\"Inserted\":true}", t3, NULL, 10);
    is_int(204, r.status, "InsertMedia");
    http_free(&r);
    r = sim_http(&s, 0, "POST", CD "/Actions/VirtualMedia.InsertMedia",
                 "{\"Image\":\"http://10.0.0.1/other.iso\"}", t3, NULL, 10);
    is_int(409, r.status, "InsertMedia over inserted media: 409");
    http_free(&r);
    r = sim_http(&s, 0, "POST", CD "/Actions/VirtualMedia.InsertMedia", "{\"Image\":\"boot.iso\"}",
                 t3, NULL, 10);
    is_int(400, r.status, "InsertMedia with a non-URL image: 400");
    http_free(&r);
    r = sim_http(&s, 0, "GET", CD, NULL, t3, NULL, 10);
    ok(cJSON_IsTrue(json_at(r.json, "Inserted")), "media inserted");
    is_string("http://10.0.0.1/boot.iso", json_str(r.json, "Image"), "image recorded");
    http_free(&r);
    r = sim_http(&s, 0, "POST", SYS "/Actions/ComputerSystem.Reset", "{\"ResetType\":\"Boot\"}", t3,
                 NULL, 10);
    is_int(400, r.status, "ResetType not advertised: 400");
    http_free(&r);
    r = sim_http(&s, 0, "POST", SYS "/Actions/ComputerSystem.Reset", "{\"ResetType\":\"On\"}", t3,
                 NULL, 10);
    is_int(204, r.status, "Reset On accepted");
    http_free(&r);
    r = sim_http(&s, 0, "GET", SYS, NULL, t3, NULL, 10);
    is_string("PoweringOn", json_str(r.json, "PowerState"), "PoweringOn during the delay");
    is_string("Cd", json_str(r.json, "Boot/BootSourceOverrideTarget"),
              "override still pending before the boot");
    http_free(&r);
    sim_control_post(&s, "/control/clock", "{\"advance_ms\":5000}");
    r = sim_http(&s, 0, "GET", SYS, NULL, t3, NULL, 10);
    is_string("On", json_str(r.json, "PowerState"), "On after the delay");
    is_string("None", json_str(r.json, "Boot/BootSourceOverrideTarget"),
              "one-time override consumed by the boot");
    is_string("Disabled", json_str(r.json, "Boot/BootSourceOverrideEnabled"),
              "override disabled after the boot");
    http_free(&r);
    cJSON *rep = sim_control_bmc(&s, 0);
    is_string("Cd", json_str(rep, "systems/0/last_boot_source"), "control: booted from Cd");
    is_string("http://10.0.0.1/boot.iso", json_str(rep, "systems/0/last_boot_image"),
              "control: booted the inserted image");
    is_int(1, (long long)json_num(rep, "systems/0/boots"), "control: one boot");
    ok(json_num(rep, "max_concurrent") >= 1, "control: max_concurrent reported");
    ok(json_num(rep, "requests") > 20, "control: requests counted");
    is_int(0, (long long)json_num(rep, "index"), "control report names its BMC");
    cJSON_Delete(rep);
    /* media stays inserted across the boot; eject */
    r = sim_http(&s, 0, "GET", CD, NULL, t3, NULL, 10);
    ok(cJSON_IsTrue(json_at(r.json, "Inserted")), "media stays inserted after boot");
    http_free(&r);
    r = sim_http(&s, 0, "POST", CD "/Actions/VirtualMedia.EjectMedia", "{}", t3, NULL, 10);
    is_int(204, r.status, "EjectMedia");
    http_free(&r);
    r = sim_http(&s, 0, "GET", CD, NULL, t3, NULL, 10);
    ok(cJSON_IsFalse(json_at(r.json, "Inserted")), "media ejected");
    is_string("NotConnected", json_str(r.json, "ConnectedVia"), "ejected slot NotConnected");
    http_free(&r);
    r = sim_http(&s, 0, "POST", CD "/Actions/VirtualMedia.EjectMedia", "{}", t3, NULL, 10);
    is_int(204, r.status, "generic: EjectMedia on an empty slot is fine");
    http_free(&r);
    r = sim_http(&s, 0, "POST", SYS "/Actions/ComputerSystem.Reset", "{\"ResetType\":\"ForceOff\"}",
                 t3, NULL, 10);
    http_free(&r);
    sim_control_post(&s, "/control/clock", "{\"advance_ms\":5000}");
    r = sim_http(&s, 0, "GET", SYS, NULL, t3, NULL, 10);
    is_string("Off", json_str(r.json, "PowerState"), "ForceOff takes effect after the delay");
    http_free(&r);
    r = sim_http(&s, 1, "GET", SYS, NULL, "basic", NULL, 10);
    is_string("Off", json_str(r.json, "PowerState"), "the other BMC keeps its own state");
    http_free(&r);
    free(t3);

    r = sim_http(&s, 0, "POST", "/redfish/v1/Systems", "{}", "basic", NULL, 10);
    is_int(405, r.status, "POST to a collection: 405");
    is_string("GET", http_header(&r, "Allow"), "405 says what is allowed");
    http_free(&r);
    r = sim_http(&s, 0, "POST", "/redfish/v1/SessionService/Sessions", "{\"UserName\":", NULL, NULL,
                 10);
    is_int(400, r.status, "login with malformed JSON: 400");
    contains(json_str(r.json, "error/@Message.ExtendedInfo/0/MessageId"), "MalformedJSON",
             "the error says the JSON is malformed");
    http_free(&r);
    char *huge = malloc(80 * 1024);
    memset(huge, ' ', 80 * 1024 - 1);
    huge[80 * 1024 - 1] = '\0';
    r = sim_http(&s, 0, "PATCH", SYS, huge, "basic", NULL, 10);
    is_int(413, r.status, "an oversized body: 413");
    http_free(&r);
    free(huge);
    r = sim_http(&s, 0, "HEAD", SYS, NULL, "basic", NULL, 10);
    is_int(200, r.status, "HEAD answered like GET");
    http_free(&r);
    is_int(400, sim_control_post(&s, "/control/faults", "{\"bmc\":7}"),
           "control rejects an unknown BMC");
    is_int(0, sim_stop(&s), "SIGTERM stops the simulator cleanly");

    /* account lockout and password changes */
    const char *args2[] = {"--lockout-after", "3", "--lockout-ms", "10000", NULL};
    sim_start(&s, args2);
    for (int k = 0; k < 3; k++) {
        r = sim_http(&s, 0, "POST", "/redfish/v1/SessionService/Sessions", bad, NULL, NULL, 10);
        http_free(&r);
    }
    tok = sim_login(&s, 0);
    ok(tok == NULL, "after 3 failures the right password is refused too");
    free(tok);
    rep = sim_control_bmc(&s, 0);
    ok(cJSON_IsTrue(json_at(rep, "locked")), "control: account locked");
    is_int(1, (long long)json_num(rep, "lockouts"), "control: one lockout");
    cJSON_Delete(rep);
    sim_control_post(&s, "/control/clock", "{\"advance_ms\":10000}");
    tok = sim_login(&s, 0);
    ok(tok != NULL, "the lock ends");
    free(tok);
    char old_pass[64];
    snprintf(old_pass, sizeof(old_pass), "%s", sim_pass(&s, 0));
    is_int(200, sim_control_post(&s, "/control/password", "{\"bmc\":0}"), "control: new password");
    ok(strcmp(old_pass, sim_pass(&s, 0)) != 0, "the password file has the new one");
    tok = sim_login(&s, 0);
    ok(tok != NULL, "login with the new password");
    free(tok);
    is_int(200,
           sim_control_post(&s, "/control/password",
                            "{\"bmc\":0,\"password\":\"Changed-Elsewhere1\",\"write_file\":false}"),
           "control: password changed behind the file's back");
    tok = sim_login(&s, 0);
    ok(tok == NULL, "the file's password no longer works");
    free(tok);
    is_int(400, sim_control_post(&s, "/control/password", "{\"bmc\":0,\"password\":\"a b\"}"),
           "control: a password with a space is refused");
    is_int(0, sim_stop(&s), "stopped");

    /* address mode: one port, an address per BMC */
    const char *args3[] = {"--bmcs", "3", "--address-base", "127.3.0.1", NULL};
    sim_start(&s, args3);
    contains(sim_addr(&s, 2), "https://127.3.0.3:", "address mode: BMC 2 at 127.3.0.3");
    const char *port0 = strrchr(sim_addr(&s, 0), ':');
    char p0[16];
    snprintf(p0, sizeof(p0), "%s", port0 != NULL ? port0 : "");
    is_string(p0, strrchr(sim_addr(&s, 2), ':'), "address mode: one port for all");
    r = sim_http(&s, 2, "GET", SYS, NULL, "basic", NULL, 10);
    is_int(200, r.status, "address mode: the certificate names the BMC's address");
    http_free(&r);
    is_int(1, (long long)sim_counter(&s, 2, "requests"), "the request reached BMC 2");
    is_int(0, (long long)sim_counter(&s, 0, "requests"), "and not BMC 0");
    is_int(0, sim_stop(&s), "stopped");

    /* bad command lines are refused with a reason */
    char prog[1024];
    const char *bd = getenv("WARD_BUILDDIR");
    snprintf(prog, sizeof(prog), "%s/tools/bmcsim/ward-bmcsim", bd != NULL ? bd : WARD_BUILDDIR);
    char *bad1[] = {prog, "--state-dir", (char *)test_tmpdir(), "--flavour", "acme", NULL};
    struct child c;
    child_spawn(&c, bad1);
    is_int(2, child_wait_exit(&c, 20), "unknown flavour: exit 2");
    contains(c.out.data, "unknown flavour 'acme'", "and the flavour is named");
    child_free(&c);
    char *bad2[] = {prog, "--bmcs", "3", NULL};
    child_spawn(&c, bad2);
    is_int(2, child_wait_exit(&c, 20), "no --state-dir: exit 2");
    contains(c.out.data, "--state-dir is required", "and says what is missing");
    child_free(&c);
    return 0;
}
