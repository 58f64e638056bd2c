/**
 * at1 on S3 against at1 on a local directory and against the plain SDK, on
 * the same bytes in the same run: a synthetic bf16 base and fine-tune
 * (Llama-shaped), added (`init` + `add`, input MB/s) and restored (`get`
 * with every SHA-256 checked, output MB/s) through the library, in-process;
 * next to them, one `PutObject` and one `GetObject` of the raw base file
 * with the same client settings (what any S3 tool pays to move those
 * bytes). Needs a service: `eval "$(scripts/ceph-test-cluster.sh start)"`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { add, getVersion, initRegistry } from '../src/index.js';
import { S3Backend } from '../src/store/s3-backend.js';
import { llamaShapes, paramCount, writeChain } from './synthetic.js';

export interface S3Row {
  what: string;
  bytes: number;
  seconds: number;
  mbPerSec: number;
}

async function timed(what: string, bytes: number, fn: () => Promise<unknown>): Promise<S3Row> {
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  return { what, bytes, seconds, mbPerSec: bytes / 1e6 / seconds };
}

/** add and get of base + fine-tune at `location`, one row each. */
async function registryRows(label: string, location: string, base: string, tuned: string, out: string): Promise<S3Row[]> {
  const bytes = statSync(base).size + statSync(tuned).size;
  let reg: Awaited<ReturnType<typeof initRegistry>>['registry'] | undefined;
  const addRow = await timed(`at1 add, ${label}`, bytes, async () => {
    reg = (await initRegistry(location, base, { name: 'base', level: 'fast' })).registry;
    await add(reg, tuned, { name: 'tuned', parent: 'base', level: 'fast' });
  });
  const getRow = await timed(`at1 get (SHA-256 checked), ${label}`, bytes, async () => {
    await getVersion(reg!, 'base', join(out, `${label}-base`));
    await getVersion(reg!, 'tuned', join(out, `${label}-tuned`));
  });
  if (reg!.backend instanceof S3Backend) reg!.backend.destroy();
  return [addRow, getRow];
}

export async function s3Bench(params: number, log: (s: string) => void): Promise<{ params: number; endpoint: string | undefined; rows: S3Row[] }> {
  const bucket = process.env.AT1_S3_TEST_BUCKET ?? process.env.AT1_S3_BENCH_BUCKET;
  if (!bucket) throw new Error('no S3 service: eval "$(scripts/ceph-test-cluster.sh start)" (or set AT1_S3_BENCH_BUCKET and the AWS variables) first');
  const work = await mkdtemp(join(tmpdir(), 'at1-s3-bench-'));
  const prefix = `at1-bench/${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const s3 = new S3Backend(`s3://${bucket}/${prefix}`);
  try {
    const shapes = llamaShapes(params);
    const base = join(work, 'base.safetensors');
    const tuned = join(work, 'tuned.safetensors');
    log(`writing a synthetic bf16 base and fine-tune of ${(paramCount(shapes) / 1e6).toFixed(0)}M parameters`);
    writeChain([base, tuned], shapes);
    const raw = readFileSync(base);
    const rows: S3Row[] = [];
    log('plain SDK PutObject / GetObject of the raw base file');
    const rawKey = `${prefix}/raw-base.safetensors`;
    rows.push(await timed('SDK PutObject, raw base file', raw.length, () => s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: rawKey, Body: raw }))));
    rows.push(
      await timed('SDK GetObject, raw base file', raw.length, async () => {
        const r = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: rawKey }));
        const got = await r.Body!.transformToByteArray();
        if (got.length !== raw.length) throw new Error('short download');
      }),
    );
    await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: rawKey }));
    log('at1 on a local directory');
    rows.push(...(await registryRows('local directory', join(work, 'reg'), base, tuned, work)));
    log(`at1 on s3://${bucket}/${prefix}`);
    rows.push(...(await registryRows('S3', `s3://${bucket}/${prefix}/reg`, base, tuned, work)));
    return { params: paramCount(shapes), endpoint: s3.settings.endpoint, rows };
  } finally {
    // Remove what the bench stored: every key under its prefix.
    const keys: string[] = [];
    for await (const k of s3.list('reg')) keys.push(k.key);
    for (let i = 0; i < keys.length; i += 16) await Promise.all(keys.slice(i, i + 16).map((k) => s3.remove(k)));
    for await (const l of s3.leftovers()) await s3.removeLeftover(l.key);
    s3.destroy();
    await rm(work, { recursive: true, force: true });
  }
}
