/**
 * vCPUs that come and go while the VM runs: the board has `maxVcpus` harts in its device
 * tree, and the guest keeps `vcpus` of them online. Linux takes a CPU offline with SBI
 * HSM `hart_stop` and brings it back with `hart_start` (src/machine/sbi.ts); a stopped
 * hart's thread sleeps. Which CPUs are online is the guest's choice, so the host asks it
 * through the guest agent (sysfs `/sys/devices/system/cpu/cpuN/online`, Documentation/
 * core-api/cpu_hotplug.rst); the default image also boots with `maxcpus=` set.
 */

/** A vCPU count that cannot be set; `status` is 400 (out of range) or 409 (not now). */
export class VcpuChangeError extends Error {
  constructor(readonly status: 400 | 409, message: string) {
    super(message);
    this.name = 'VcpuChangeError';
  }
}

/**
 * The shell script (busybox `sh`) that brings CPUs 1..count-1 online and count..max-1
 * offline, in that order, and exits non-zero if the guest refused one. CPU 0 stays online.
 * `root` is the sysfs folder of the CPUs (a test may point it elsewhere).
 * @throws VcpuChangeError(400) unless 1 <= count <= max.
 */
export function cpuOnlineScript(count: number, max: number, root = '/sys/devices/system/cpu'): string {
  if (!Number.isInteger(count) || count < 1 || count > max) throw new VcpuChangeError(400, `vcpus ${count}: this VM has 1 to ${max} (the vCPUs it booted with; raise --max-cpus and restart it for more)`);
  const lines = ['rc=0'];
  const set = (cpu: number, on: 0 | 1) => {
    const f = `${root}/cpu${cpu}/online`;
    lines.push(`if [ "$(cat ${f})" != ${on} ]; then echo ${on} > ${f} || rc=1; fi`);
  };
  for (let c = 1; c < count; c++) set(c, 1);
  for (let c = max - 1; c >= count; c--) set(c, 0);
  lines.push('exit $rc');
  return lines.join('\n') + '\n';
}
