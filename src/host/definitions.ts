/**
 * VM definitions from what the user asked: a new one from `vm create`'s fields, a changed
 * one from `vm set`'s patch. Pure: validation, the store and the running VM are the
 * caller's (src/host/host.ts).
 */
import { DEFAULT_CPU_WEIGHT, networkFields } from './store.js';
import { DEFAULT_DISK_WEIGHT } from './disk-arbiter.js';
import { DEFAULT_SSH_USER } from '../vmm/guest-setup.js';
import { formatPublish, nicAttachment } from '../vmm/network.js';
import type { VmDefinition } from './types.js';
import type { VmCreateInput, VmPatch } from './api-types.js';

/** Default guest memory of `vm create` (bytes). */
export const DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024;

/**
 * The definition of a new VM: `input` with defaults (1 vCPU, 512 MiB, weight 100, no cap,
 * restart `no`, one `user` card), maxima equal to the size left out, created now.
 * @throws HostError('invalid_argument') for bad networks or published ports.
 */
export function newDefinition(input: VmCreateInput, image?: { name: string; key: string }): VmDefinition {
  const vcpus = input.vcpus ?? 1;
  const memoryBytes = input.memoryBytes ?? DEFAULT_MEMORY_BYTES;
  return {
    name: input.name,
    vcpus,
    ...(input.maxVcpus !== undefined && input.maxVcpus !== vcpus ? { maxVcpus: input.maxVcpus } : {}),
    memoryBytes,
    ...(input.maxMemoryBytes !== undefined && input.maxMemoryBytes !== memoryBytes ? { maxMemoryBytes: input.maxMemoryBytes } : {}),
    ...(input.memoryPolicy === 'dynamic' ? { memoryPolicy: 'dynamic' as const } : {}),
    ...(input.minMemoryBytes !== undefined ? { minMemoryBytes: input.minMemoryBytes } : {}),
    ...(input.memoryBufferPercent !== undefined ? { memoryBufferPercent: input.memoryBufferPercent } : {}),
    ...(input.memoryPriority !== undefined ? { memoryPriority: input.memoryPriority } : {}),
    ...(input.diskWeight !== undefined && input.diskWeight !== DEFAULT_DISK_WEIGHT ? { diskWeight: input.diskWeight } : {}),
    disks: (input.disks ?? []).map((d) => ({ path: d.path, readonly: !!d.readonly })),
    ...(input.cdrom ? { cdrom: input.cdrom } : {}),
    ...(input.shares?.length ? { shares: input.shares.map((s) => ({ path: s.path, tag: s.tag, ...(s.readonly ? { readonly: true } : {}) })) } : {}),
    ...(input.kernel ? { kernel: input.kernel } : {}),
    ...(input.initrd ? { initrd: input.initrd } : {}),
    ...(input.append ? { append: input.append } : {}),
    cpuWeight: input.cpuWeight ?? DEFAULT_CPU_WEIGHT,
    cpuCap: input.cpuCap ?? 0,
    restart: input.restart ?? 'no',
    ...networkFields(input.name, input.networks, input.publish),
    ...(input.netRateMbit ? { netRateMbit: input.netRateMbit } : {}),
    ...(input.diskIops ? { diskIops: input.diskIops } : {}),
    ...(input.diskBps ? { diskBps: input.diskBps } : {}),
    ...(input.sshKeys?.length ? { ssh: { user: DEFAULT_SSH_USER, keys: input.sshKeys } } : {}),
    ...(input.engine ? { engine: input.engine } : {}),
    ...(input.vramBytes !== undefined ? { vramBytes: input.vramBytes } : {}),
    ...(input.resolution !== undefined ? { resolution: input.resolution } : {}),
    createdAt: Date.now(),
    ...(image ? { image } : {}),
  };
}

/**
 * `def` with `patch` applied: `null` (and a 0 network rate or disk limit) removes a field; networks and
 * published ports are rebuilt together (an unchanged half from `def`, in the words the
 * user would give); SSH keys keep the user. Not validated.
 * @throws HostError('invalid_argument') for bad networks or published ports.
 */
export function patchDefinition(def: VmDefinition, patch: VmPatch): VmDefinition {
  const next: VmDefinition = { ...def };
  for (const [k, v] of Object.entries(patch) as Array<[keyof VmPatch, unknown]>) {
    if (v === undefined || k === 'networks' || k === 'publish' || k === 'sshKeys') continue;
    if (k === 'memoryPolicy' && v === 'static') {
      // a static VM has no minimum, buffer nor priority
      for (const f of ['memoryPolicy', 'minMemoryBytes', 'memoryBufferPercent', 'memoryPriority'] as const) delete next[f];
      continue;
    }
    if (v === null || ((k === 'netRateMbit' || k === 'diskIops' || k === 'diskBps') && v === 0)) delete (next as unknown as Record<string, unknown>)[k];
    else if (k === 'disks') next.disks = (v as Array<{ path: string; readonly?: boolean }>).map((d) => ({ path: d.path, readonly: !!d.readonly }));
    else (next as unknown as Record<string, unknown>)[k] = v;
  }
  if (patch.networks !== undefined || patch.publish !== undefined) {
    delete next.nics;
    delete next.publish;
    const networks = patch.networks ?? (def.nics?.length ? def.nics.map(nicAttachment) : ['none']);
    const publish = patch.publish ?? (def.publish ?? []).map(formatPublish);
    Object.assign(next, networkFields(def.name, networks, publish));
  }
  if (patch.sshKeys !== undefined) {
    delete next.ssh;
    if (patch.sshKeys?.length) next.ssh = { user: def.ssh?.user ?? DEFAULT_SSH_USER, keys: patch.sshKeys };
  }
  return next;
}
