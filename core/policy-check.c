/* SPDX-License-Identifier: Apache-2.0 */
/* ward-policy-check FILE...: what `wardctl policy check` runs, usable before wardctl exists. */
#include "autoconf.h"

#include "policy.h"

int main(int argc, char **argv)
{
    return ward_policy_check_main(argc, argv);
}
