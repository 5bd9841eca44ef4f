/**
 * Bench section `media`: the CD-ROM drive and a shared folder, tsvisor against
 * `qemu-system-riscv64` with `scsi-cd` on `virtio-scsi-device` and the `local` 9p backend
 * (`-fsdev local,security_model=none` + `virtio-9p-device`, the virtio-mmio form of
 * `-virtfs`), the same default guest (1 vCPU, 1 GiB), the same command, in the same run:
 *
 *   - CD-ROM: `mount /dev/sr0` and read a BENCH_MEDIA_BYTES (default 512 MiB) file of an
 *     xorriso ISO (`cat > /dev/null`), cold in the guest;
 *   - share read: the same file read through 9P2000.L (msize 256 KiB, both sides);
 *   - 10,000 small files (1 KiB each, in 100 folders) copied from the share into the
 *     guest's tmpfs (`cp -r`), and that copy written back into the share.
 * Times are the guest's own (`/proc/uptime` around each step). The share is mounted by the
 * default image's /init on both sides (it mounts every virtio-9p tag on /mnt/TAG).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Guests, QEMU, TIMED_SHELL_FN, TSVISOR_CMD, check, log, parseTimes, pseudoRandomBytes, runGuest, table, type Outcome } from './common.js';
import { initrdWithCommand } from '../src/cli/run.js';

const MiB = 1 << 20;
const FILES = 10_000;

/** The guest's script: the four timed steps. */
function script(bytes: number): string {
  return [
    TIMED_SHELL_FN,
    'mkdir -p /mnt/cd',
    'w cdrom "mount -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/big.bin > /dev/null"',
    '[ "$(stat -c %s /mnt/cd/big.bin)" = ' + bytes + ' ] || echo "@@ cdrom-size 0 0 1"',
    'w share "cat /mnt/data/big.bin > /dev/null"',
    'w copyin "cp -r /mnt/data/tree /tmp/tree"',
    `[ "$(find /tmp/tree -type f | wc -l)" = ${FILES} ] || echo "@@ copyin-count 0 0 1"`,
    'w copyout "cp -r /tmp/tree /mnt/data/back && sync"',
  ].join('\n');
}

/** Runs the bench section; its lines. */
export async function benchMedia(g: Guests, work: string): Promise<string[]> {
  const bytes = Number(process.env.BENCH_MEDIA_BYTES ?? 512 * MiB);
  const dir = mkdtempSync(join(work, 'media-'));
  try {
    log(`media: building a ${bytes / MiB} MiB ISO and a share with ${FILES} small files`);
    const iso = join(dir, 'media.iso');
    const isoTree = join(dir, 'iso');
    const share = join(dir, 'share');
    mkdirSync(isoTree);
    mkdirSync(join(share, 'tree'), { recursive: true });
    const fd = openSync(join(isoTree, 'big.bin'), 'w');
    for (let i = 0; i < bytes / MiB; i++) writeSync(fd, pseudoRandomBytes(MiB, 900 + i));
    closeSync(fd);
    execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'MEDIA', '-J', '-R', '-o', iso, isoTree], { stdio: 'ignore' });
    rmSync(isoTree, { recursive: true });
    // the share's big file: the ISO holds it byte for byte, so one copy on the host is enough
    execFileSync('sh', ['-c', `xorriso -osirrox on -indev ${iso} -extract /big.bin ${join(share, 'big.bin')} >/dev/null 2>&1`]);
    const small = pseudoRandomBytes(1024, 77);
    for (let d = 0; d < 100; d++) {
      const sub = join(share, 'tree', `d${d}`);
      mkdirSync(sub);
      for (let f = 0; f < FILES / 100; f++) writeFileSync(join(sub, `f${f}`), small);
    }
    const cmd = ['sh', '-c', script(bytes)];
    const reset = () => rmSync(join(share, 'back'), { recursive: true, force: true });

    log('media: tsvisor');
    reset();
    const t = await runGuest(process.execPath, [...TSVISOR_CMD, 'run', '--memory', '1G', '--network', 'none', '--cdrom', iso, '--share', `${share}:data`, '--', ...cmd], { filterMarker: false });
    check('tsvisor media', t);
    const tt = parseTimes(t.out);
    let qt: Map<string, number> | undefined;
    if (g.haveQemu) {
      log(`media: ${QEMU} scsi-cd on virtio-scsi-device, 9p local on virtio-9p-device`);
      reset();
      const initrd = join(dir, 'qemu-initrd');
      writeFileSync(initrd, initrdWithCommand(readFileSync(g.img.initrd), cmd));
      const q: Outcome = await runGuest(QEMU, [
        '-machine', 'virt', '-cpu', g.qemuCpu, '-nographic', '-m', '1G', '-smp', '1', '-bios', 'default', '-no-reboot',
        '-kernel', g.img.kernel, '-initrd', initrd, '-append', g.bootargs,
        '-device', 'virtio-scsi-device,id=scsi0',
        '-drive', `file=${iso},format=raw,if=none,id=cd0,media=cdrom,readonly=on`, '-device', 'scsi-cd,drive=cd0,bus=scsi0.0',
        '-fsdev', `local,id=fs0,path=${share},security_model=none`, '-device', 'virtio-9p-device,fsdev=fs0,mount_tag=data',
      ], { filterMarker: true });
      check('QEMU media', q);
      qt = parseTimes(q.out);
    }
    const mbs = (m: Map<string, number> | undefined, k: string) => (m?.get(k) ? bytes / MiB / m.get(k)! : undefined);
    return [
      ...g.header(`1 vCPU, 1 GiB; a ${bytes / MiB} MiB file on an ISO and on a share, ${FILES} files of 1 KiB`),
      '',
      ...table([
        ['CD-ROM sequential read', mbs(tt, 'cdrom'), mbs(qt, 'cdrom')],
        ['share sequential read', mbs(tt, 'share'), mbs(qt, 'share')],
      ], 'MB/s', 1),
      '',
      ...table([
        [`${FILES} files share -> guest (cp -r)`, tt.get('copyin'), qt?.get('copyin')],
        [`${FILES} files guest -> share (cp -r)`, tt.get('copyout'), qt?.get('copyout')],
      ], 's', 2),
      '(MB/s: higher is better, so a ratio above 1 is tsvisor ahead; seconds: lower is better)',
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
