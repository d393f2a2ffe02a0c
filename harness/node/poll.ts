// Remote pollers sample sysfs or `rdma res` every few tens of milliseconds. Sleeping through a
// fork of sleep(1) each time costs more than the sample; `read -t` on a pipe nobody writes to
// sleeps inside bash. The pipe comes from a coprocess — not process substitution, which needs
// /dev/fd (absent on a minimal /dev such as the VM guests') — and it ends with the poller: when
// the poller exits, the coprocess's stdin closes and its read returns.

/** Bash: sets up the pipe; must come first in the script. */
export const NAP_SETUP = `coproc RF_NAP { read -r _; }
exec 3<&"\${RF_NAP[0]}" || exit 1`;

/** Bash: sleeps $1 seconds (fractions allowed). A read that fails for any reason but the timeout
 *  (status > 128) ends the poller instead of spinning without a pause. */
export const nap = (seconds: string): string => `{ read -t ${seconds} -u 3 _; [ $? -gt 128 ] || exit 1; }`;
