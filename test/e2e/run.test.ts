/**
 * `tsvisor run` end to end: spawns `node bin/tsvisor.js run ...` as a user would, boots
 * the real Debian kernel of the default image and checks what comes out.
 *
 * A boot costs 20-60 s, so boots are few and shared:
 *   - `run -- uname -m` and `run -- sh -c 'exit 7'`, one after the other, overlapping
 *   - one big run with a read-write and a read-only ext4 disk whose guest script makes
 *     all the disk, gzip and text-tool checks and prints `@@ name value` lines,
 *   - a second run on the same read-write disk (persistence).
 * Bad command lines are checked first; they must fail at once, without a boot.
 *
 * Needs the default image: `tsvisor image pull` (cache in $TSVISOR_HOME, else
 * ~/.local/share/tsvisor; downloads from the Debian mirror when not cached) and the host
 * tools mke2fs, debugfs, e2fsck, gzip, sort, awk.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  bytesHash, describeRun, fileHash, findTool, host, pseudoRandomBytes, pseudoRandomCsv, tsvisor, type RunResult,
  once, results,
} from './helpers.js';

const BOOT_TIMEOUT_MS = 4 * 60_000; // a trivial command: a boot takes up to ~60 s on a loaded machine
const BIG_TIMEOUT_MS = 10 * 60_000; // boot + ~1 min of guest work here, several on a slow machine
const STATS = { TSVISOR_STATS: '1' };

/** Awk programs run in the guest (busybox awk) and on the host; outputs must agree. */
const AWK_PROGRAMS: Record<string, string> = {
  'sum.awk': '{ s += $2; f += $3; if ($2 > m) m = $2 } END { printf "%d %d %.3f %d\\n", NR, s, f, m }\n',
  'count.awk': '{ c[substr($1, 1, 3)]++ } END { for (k in c) print k, c[k] }\n', // order: sorted afterwards
  'fields.awk': 'NR % 37 == 0 { print NR, toupper($4), length($1), substr($4, 2, 3), $2 * 3, int($3 * 10), ($2 % 7) }\n',
};

const GUEST_FILE_TEXT = 'written by the guest\n';

let work = '';
let kernelPath = '';
let tools: Record<string, string> = {};
let rwImg = '';
let roImg = '';
let dataDir = '';
let mixMd5 = '';
let mixSha256 = '';

function tool(name: string): string {
  const p = tools[name];
  assert.ok(p, `host tool ${name} missing`);
  return p;
}

/** `debugfs -R 'cat PATH' IMG` (reads the image without mounting it). */
function debugfsCat(img: string, path: string): Buffer {
  return host(tool('debugfs'), ['-R', `cat ${path}`, img]);
}

/** Copy PATH out of IMG to the host file DEST with debugfs. */
function debugfsDump(img: string, path: string, dest: string): Buffer {
  rmSync(dest, { force: true });
  host(tool('debugfs'), ['-R', `dump ${path} ${dest}`, img]);
  try { return readFileSync(dest); } catch { throw new Error(`${path} is not on ${img} (debugfs dump made nothing)`); }
}

// ---------------------------------------------------------------------------------------
// The guest script of the big run: /dev/vda = rw.img, /dev/vdb = ro.img (readonly).
const BIG_SCRIPT = `
r() { echo "@@ $*"; }
mkdir -p /mnt/rw /mnt/ro
mount -t ext4 /dev/vda /mnt/rw; r mount-rw $?
mount -t ext4 /dev/vdb /mnt/ro 2>/dev/null; r mount-ro $?
r ro-flag "$(cat /sys/block/vdb/ro)"
r ro-mounted "$(grep ' /mnt/ro ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
r ro-read "$(cat /mnt/ro/keep.txt)"
echo x 2>/dev/null > /mnt/ro/new.txt; r ro-fs-write $?
dd if=/dev/zero of=/dev/vdb bs=4096 count=1 conv=fsync 2>/dev/null; r ro-dev-write $?
blockdev --setrw /dev/vdb 2>/dev/null
dd if=/dev/zero of=/dev/vdb bs=4096 seek=1 count=1 oflag=direct conv=fsync 2>/dev/null; r ro-dev-write-setrw $?
cd /mnt/rw || exit 99
printf '${GUEST_FILE_TEXT.replace(/\n/g, '\\n')}' > hello.txt; r write $?
mkdir -p out
cp mix.bin rt.bin && gzip -9 rt.bin; r gzip $?
cp rt.bin.gz out/guest.gz
gzip -d rt.bin.gz; r gunzip $?
r rt-md5 "$(md5sum rt.bin | cut -d' ' -f1)"
r hostgz-md5 "$(gzip -dc input.csv.gz | md5sum | cut -d' ' -f1)"
md5sum input.csv mix.bin > out/md5.txt; r md5sum $?
sha256sum input.csv rt.bin > out/sha256.txt; r sha256sum $?
sort input.csv > out/sort.txt; r sort $?
sort -r input.csv > out/sort-r.txt; r sort-r $?
sort -t, -k3,3n input.csv > out/sort-n.txt; r sort-n $?
awk -F, -f sum.awk input.csv > out/sum.txt; r awk-sum $?
awk -F, -f count.awk input.csv | sort > out/count.txt; r awk-count $?
awk -F, -f fields.awk input.csv > out/fields.txt; r awk-fields $?
cd /
umount /mnt/ro; r umount-ro $?
umount /mnt/rw; r umount-rw $?
r done
`;

describe('tsvisor run (end to end)', { timeout: 20 * 60_000 }, () => {
  before(async () => {
    for (const t of ['mke2fs', 'debugfs', 'e2fsck', 'gzip', 'sort', 'awk']) {
      const p = findTool(t);
      if (!p) throw new Error(`the e2e tests need the host tool "${t}" (Debian/Ubuntu: apt-get install e2fsprogs gzip coreutils mawk)`);
      tools[t] = p;
    }
    // the default image, as a user gets it (cached in $TSVISOR_HOME)
    const pull = await tsvisor(['image', 'pull'], { timeoutMs: 20 * 60_000 });
    const kernelLine = pull.stdout.split('\n').map((s) => s.trim()).find((s) => s.startsWith('/') && s.endsWith('/Image'));
    if (pull.code !== 0 || !kernelLine) {
      throw new Error('the e2e tests need the default image and `tsvisor image pull` could not provide it '
        + `(set TSVISOR_HOME to a prepared cache, or give this machine access to the Debian mirror).\n${describeRun('tsvisor image pull', pull)}`);
    }
    kernelPath = kernelLine;
    statSync(kernelPath);

    work = mkdtempSync(join(tmpdir(), 'tsvisor-e2e-'));
    // read-write disk: 8 MiB of pseudo-random data, a CSV, the awk programs, a host-made .gz
    dataDir = join(work, 'rw');
    mkdirSync(dataDir);
    const mix = pseudoRandomBytes(8 * 1024 * 1024, 0x2545f491);
    mixMd5 = bytesHash(mix, 'md5');
    mixSha256 = bytesHash(mix);
    writeFileSync(join(dataDir, 'mix.bin'), mix);
    const csv = pseudoRandomCsv(4000, 7);
    writeFileSync(join(dataDir, 'input.csv'), csv);
    writeFileSync(join(dataDir, 'input.csv.gz'), host(tool('gzip'), ['-9', '-c', join(dataDir, 'input.csv')]));
    for (const [name, prog] of Object.entries(AWK_PROGRAMS)) writeFileSync(join(dataDir, name), prog);
    rwImg = join(work, 'rw.img');
    host(tool('mke2fs'), ['-q', '-t', 'ext4', '-F', '-d', dataDir, rwImg, '64M']);
    // read-only disk
    const roDir = join(work, 'ro');
    mkdirSync(roDir);
    writeFileSync(join(roDir, 'keep.txt'), 'keep me\n');
    roImg = join(work, 'ro.img');
    host(tool('mke2fs'), ['-q', '-t', 'ext4', '-F', '-d', roDir, roImg, '16M']);
  }, { timeout: 25 * 60_000 });

  after(() => {
    if (work && !process.env.TSVISOR_E2E_KEEP) rmSync(work, { recursive: true, force: true });
  });

  // Boots are started by the first test that needs them and may overlap one another
  // (each VM uses about one host core).
  const bigRun = once(async () => {
    const roHash = fileHash(roImg);
    const r = await tsvisor(['run', '--disk', rwImg, '--disk', `${roImg},readonly`, '--', 'sh', '-c', BIG_SCRIPT],
      { timeoutMs: BIG_TIMEOUT_MS, env: STATS });
    return { r, roHashBefore: roHash, roHashAfter: fileHash(roImg) };
  });
  const trivialRuns = once(async () => {
    const uname = await tsvisor(['run', '--', 'uname', '-m'], { timeoutMs: BOOT_TIMEOUT_MS, env: STATS });
    const exit7 = await tsvisor(['run', '--', 'sh', '-c', 'exit 7'], { timeoutMs: BOOT_TIMEOUT_MS, env: STATS });
    return { uname, exit7 };
  });
  const secondRun = once(async () => {
    await bigRun();
    return tsvisor(['run', '--disk', rwImg, '--', 'sh', '-c',
      'mount /dev/vda /mnt && cat /mnt/hello.txt && echo "second run" >> /mnt/hello.txt && umount /mnt'],
    { timeoutMs: BOOT_TIMEOUT_MS, env: STATS });
  });

  describe('bad input fails at once with a one-line error', () => {
    let good = '';
    let goodHash = '';
    before(() => {
      good = join(work, 'good.img');
      host(tool('mke2fs'), ['-q', '-t', 'ext4', '-F', good, '8M']);
      goodHash = fileHash(good);
    });

    async function expectUsageError(args: string[], mention: RegExp): Promise<void> {
      const r = await tsvisor(['run', ...args], { timeoutMs: 60_000, env: STATS });
      const what = `tsvisor run ${args.join(' ')}`;
      assert.ok(r.code !== null && r.code !== 0, describeRun(`${what} should fail`, r));
      assert.equal(r.stdout, '', describeRun(`${what} printed on stdout`, r));
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, describeRun(`${what} should print exactly one line on stderr`, r));
      assert.match(lines[0], /^tsvisor: /, describeRun(what, r));
      assert.doesNotMatch(r.stderr, /^\s+at /m, describeRun(`${what} printed a stack trace`, r));
      assert.match(lines[0], mention, describeRun(`${what}: the error should mention ${mention}`, r));
      assert.ok(r.seconds < 15, describeRun(`${what} took too long (did it boot?)`, r));
      assert.equal(fileHash(good), goodHash, `${what} modified the disk image ${good}`);
    }

    test('missing disk file', async () => {
      const missing = join(work, 'no-such-disk.img');
      await expectUsageError(['--disk', good, '--disk', missing, '--', 'true'], /no-such-disk\.img/);
    });
    test('disk that is a directory', async () => {
      await expectUsageError(['--disk', good, '--disk', work, '--', 'true'], new RegExp(work.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    });
    test('unknown --disk option', async () => {
      await expectUsageError(['--disk', `${good},bogus`, '--', 'true'], /bogus/);
    });
    test('missing kernel file', async () => {
      await expectUsageError(['--disk', good, '--kernel', join(work, 'no-such-Image'), '--', 'true'], /no-such-Image/);
    });
    test('truncated kernel image', async () => {
      const half = join(work, 'half-Image');
      const k = readFileSync(kernelPath);
      writeFileSync(half, k.subarray(0, k.length >> 1));
      await expectUsageError(['--disk', good, '--kernel', half, '--', 'true'], /truncated|kernel/i);
    });
    test('--memory abc', async () => {
      await expectUsageError(['--disk', good, '--memory', 'abc', '--', 'true'], /memory.*abc|abc.*memory/i);
    });
    test('--memory 100T (more than the host has)', async () => {
      await expectUsageError(['--disk', good, '--memory', '100T', '--', 'true'], /100T/);
    });
    test('missing --boot-disk file', async () => {
      await expectUsageError(['--boot-disk', join(work, 'no-such-boot.qcow2'), '--', 'true'], /no-such-boot\.qcow2/);
    });
    test('--boot-disk with --image, or with --kernel', async () => {
      await expectUsageError(['--boot-disk', good, '--image', 'debian', '--', 'true'], /--image and --boot-disk/);
      await expectUsageError(['--boot-disk', good, '--kernel', kernelPath, '--', 'true'], /--kernel/);
    });
    test('a corrupt qcow2 as --boot-disk is named and left untouched', async () => {
      const bad = join(work, 'bad-version.qcow2');
      const header = Buffer.alloc(512);
      header.write('QFI\xfb', 0, 'latin1');
      header.writeUInt32BE(9, 4); // version 9
      writeFileSync(bad, header);
      await expectUsageError(['--boot-disk', bad, '--', 'true'], /qcow2.*version|version.*9/i);
      assert.deepEqual(readFileSync(bad), header, 'the corrupt image was written');
    });
  });

  test('run -- uname -m prints riscv64', { timeout: BIG_TIMEOUT_MS + BOOT_TIMEOUT_MS }, async (t) => {
    void bigRun(); // overlap: the big run boots meanwhile
    const { uname } = await trivialRuns();
    t.diagnostic(`boot + uname: ${uname.seconds.toFixed(1)} s`);
    assert.equal(uname.code, 0, describeRun('tsvisor run -- uname -m', uname));
    assert.equal(uname.stdout.replace(/\r/g, '').trim(), 'riscv64', describeRun('tsvisor run -- uname -m', uname));
  });

  test("run -- sh -c 'exit 7' exits 7", { timeout: 2 * BOOT_TIMEOUT_MS }, async () => {
    const { exit7 } = await trivialRuns();
    assert.equal(exit7.code, 7, describeRun("tsvisor run -- sh -c 'exit 7'", exit7));
  });

  describe('disks', () => {
    let big: Awaited<ReturnType<typeof bigRun>>;
    let res: Map<string, string>;
    let outDir = '';

    before(async () => {
      big = await bigRun();
      res = results(big.r);
      outDir = join(work, 'out');
      mkdirSync(outDir, { recursive: true });
    }, { timeout: BIG_TIMEOUT_MS + 60_000 });

    const ok = (name: string) => {
      assert.equal(big.r.code, 0, describeRun('the big run', big.r));
      assert.ok(res.has('done'), describeRun('the guest script did not finish', big.r));
      assert.equal(res.get(name), '0', describeRun(`guest step ${name} failed`, big.r));
    };

    test('the guest script ran to the end', (t) => {
      t.diagnostic(`big run: ${big.r.seconds.toFixed(1)} s; ${big.r.stderr.trim()}`);
      for (const step of ['mount-rw', 'write', 'umount-rw', 'umount-ro']) ok(step);
    });

    test('a file written in the guest is on the host image right after the run', () => {
      ok('write');
      assert.equal(debugfsCat(rwImg, '/hello.txt').toString(), GUEST_FILE_TEXT);
      // the guest left a consistent file system behind
      host(tool('e2fsck'), ['-f', '-n', rwImg]);
    });

    test('... and in the next run', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async () => {
      const r = await secondRun();
      assert.equal(r.code, 0, describeRun('the second run', r));
      assert.equal(r.stdout.replace(/\r/g, ''), GUEST_FILE_TEXT, describeRun('the second run', r));
      assert.equal(debugfsCat(rwImg, '/hello.txt').toString(), GUEST_FILE_TEXT + 'second run\n');
      host(tool('e2fsck'), ['-f', '-n', rwImg]);
    });

    test('a readonly disk is not modified and guest writes fail', () => {
      assert.equal(res.get('mount-ro'), '0', describeRun('mounting the readonly disk', big.r));
      assert.equal(res.get('ro-read'), 'keep me', describeRun('reading the readonly disk', big.r));
      assert.equal(res.get('ro-flag'), '1', describeRun('/sys/block/vdb/ro', big.r));
      assert.equal(res.get('ro-mounted'), 'ro', describeRun('mount options of the readonly disk', big.r));
      for (const step of ['ro-fs-write', 'ro-dev-write', 'ro-dev-write-setrw']) {
        assert.ok(res.has(step), describeRun(`guest step ${step} missing`, big.r));
        assert.notEqual(res.get(step), '0', describeRun(`guest step ${step} should fail`, big.r));
      }
      assert.equal(big.roHashAfter, big.roHashBefore, 'the readonly disk image changed (sha256)');
    });

    test('gzip -9 and gzip -d of an 8 MiB file round-trip byte for byte', () => {
      ok('gzip');
      ok('gunzip');
      assert.equal(res.get('rt-md5'), mixMd5, 'md5sum in the guest of the round-tripped file');
      const rt = debugfsDump(rwImg, '/rt.bin', join(outDir, 'rt.bin'));
      assert.equal(rt.length, 8 * 1024 * 1024);
      assert.equal(bytesHash(rt, 'md5'), mixMd5, 'md5 on the host of the round-tripped file');
      // the guest's .gz is a valid gzip stream for the host's gzip too, and vice versa
      const gz = debugfsDump(rwImg, '/out/guest.gz', join(outDir, 'guest.gz'));
      assert.ok(gz.length > 4 * 1024 * 1024 && gz.length < 8 * 1024 * 1024, `guest.gz is ${gz.length} bytes`);
      assert.equal(bytesHash(host(tool('gzip'), ['-d', '-c', join(outDir, 'guest.gz')]), 'md5'), mixMd5);
      assert.equal(res.get('hostgz-md5'), fileHash(join(dataDir, 'input.csv'), 'md5'), 'guest gunzip of a host .gz');
    });

    test('md5sum and sha256sum agree with the host', () => {
      ok('md5sum');
      ok('sha256sum');
      const input = join(dataDir, 'input.csv');
      const md5 = debugfsDump(rwImg, '/out/md5.txt', join(outDir, 'md5.txt')).toString();
      assert.equal(md5, `${fileHash(input, 'md5')}  input.csv\n${mixMd5}  mix.bin\n`);
      const sha = debugfsDump(rwImg, '/out/sha256.txt', join(outDir, 'sha256.txt')).toString();
      assert.equal(sha, `${fileHash(input)}  input.csv\n${mixSha256}  rt.bin\n`);
    });

    test('sort agrees with the host', () => {
      const input = join(dataDir, 'input.csv');
      for (const [name, args] of [['sort', []], ['sort-r', ['-r']], ['sort-n', ['-t,', '-k3,3n']]] as const) {
        ok(name);
        const guest = debugfsDump(rwImg, `/out/${name}.txt`, join(outDir, `${name}.txt`));
        const want = host(tool('sort'), [...args, input]);
        assert.ok(guest.equals(want), `${name}: guest and host outputs differ (see ${join(outDir, `${name}.txt`)})`);
      }
    });

    test('awk agrees with the host', () => {
      const input = join(dataDir, 'input.csv');
      for (const prog of Object.keys(AWK_PROGRAMS)) {
        const name = prog.replace(/\.awk$/, '');
        ok(`awk-${name}`);
        const guest = debugfsDump(rwImg, `/out/${name}.txt`, join(outDir, `${name}.txt`)).toString();
        let want = host(tool('awk'), ['-F,', '-f', join(dataDir, prog), input]).toString();
        if (name === 'count') want = host(tool('sort'), [], want).toString();
        assert.equal(guest, want, `awk -f ${prog}: guest and host outputs differ`);
        assert.ok(guest.length > 0);
      }
    });
  });
});
