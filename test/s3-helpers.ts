/**
 * The S3 service the tests run against: a real one, never a mock. CI starts
 * a Ceph cluster with scripts/ceph-test-cluster.sh and evals its exports
 * (AWS_ENDPOINT_URL, the credentials, AT1_S3_TEST_BUCKET); without them the
 * S3 tests skip, saying how to start one, unless AT1_REQUIRE_S3=1 (set by
 * .ci/run), where a missing service is a failure rather than a skip.
 * Every test works under a prefix of its own and removes it afterwards.
 */
import { randomBytes } from 'node:crypto';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { S3Backend } from '../src/store/s3-backend.js';

export const S3_BUCKET = process.env.AT1_S3_TEST_BUCKET;

if (!S3_BUCKET && process.env.AT1_REQUIRE_S3 === '1') {
  throw new Error('AT1_REQUIRE_S3=1 but no S3 test service is configured: eval "$(scripts/ceph-test-cluster.sh start)" first');
}

/** false when an S3 service is configured, else the reason to skip (for node:test's `skip`). */
export const S3_SKIP: string | false = S3_BUCKET
  ? false
  : 'no S3 test service configured (AT1_S3_TEST_BUCKET unset): run eval "$(scripts/ceph-test-cluster.sh start)" first; .ci/run does';

/** A fresh `s3://bucket/prefix` location for one test, emptied when the test ends. */
export function s3Location(t: { after: (fn: () => Promise<void>) => void }, label = 't'): string {
  const location = `s3://${S3_BUCKET}/at1-tests/${label}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  t.after(() => emptyS3(location));
  return location;
}

/** Remove every key and incomplete upload under a location. */
export async function emptyS3(location: string): Promise<void> {
  const b = new S3Backend(location);
  try {
    const all: string[] = [];
    for await (const name of b.topLevel()) {
      const st = await b.stat(name);
      if (st) all.push(name);
      for await (const k of b.list(name)) all.push(k.key);
    }
    const prefix = b.root ? b.root + '/' : '';
    for (let i = 0; i < all.length; i += 1000) {
      const Objects = all.slice(i, i + 1000).map((k) => ({ Key: prefix + k }));
      await b.client.send(new DeleteObjectsCommand({ Bucket: b.bucket, Delete: { Objects, Quiet: true } }));
    }
    for await (const l of b.leftovers()) await b.removeLeftover(l.key);
  } finally {
    b.destroy();
  }
}
