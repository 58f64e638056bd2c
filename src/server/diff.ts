/**
 * Two versions compared tensor by tensor: which changed and by how much.
 * The question a person asks of two checkpoints is "what did training
 * touch": per tensor, the relative L2 change ‖b − a‖ / ‖a‖ and the fraction
 * of elements whose value changed. Tensors with the same SHA-256 are equal
 * without being decoded; the others are read (verified) one pair at a time.
 */
import { readTensorBytes, tensorsOf, toFloat32, type Registry, type TensorLocation, type VersionManifest } from '../index.js';

export interface TensorDiff {
  name: string;
  status: 'same' | 'changed' | 'added' | 'removed' | 'reshaped';
  dtype: string;
  shape: number[];
  /** ‖b − a‖₂ / ‖a‖₂ over the values (float dtypes); null when it cannot be computed. */
  relL2: number | null;
  /** Elements whose value differs, over the element count; null for added, removed or reshaped tensors. */
  fractionChanged: number | null;
  elements: number;
}

export interface VersionDiff {
  a: string;
  b: string;
  tensors: TensorDiff[];
  summary: { tensors: number; changed: number; same: number; added: number; removed: number; reshaped: number; elementsChanged: number; elements: number };
}

const FLOAT = new Set(['F32', 'F16', 'BF16']);

function count(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Compare the bytes of two same-shaped tensors. */
export function compareTensors(da: string, a: Uint8Array, db: string, b: Uint8Array, elements: number): { relL2: number | null; fractionChanged: number } {
  if (FLOAT.has(da) && FLOAT.has(db)) {
    const fa = toFloat32(da, a);
    const fb = toFloat32(db, b);
    let num = 0;
    let den = 0;
    let changed = 0;
    for (let i = 0; i < elements; i++) {
      const x = fa[i]!;
      const y = fb[i]!;
      if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) changed++;
      const d = y - x;
      num += d * d;
      den += x * x;
    }
    const relL2 = den > 0 ? Math.sqrt(num) / Math.sqrt(den) : num === 0 ? 0 : null;
    return { relL2, fractionChanged: elements === 0 ? 0 : changed / elements };
  }
  // Other dtypes: an element changed when its bytes did; no L2 for integers and bools.
  if (da !== db) return { relL2: null, fractionChanged: 1 };
  const w = a.length / Math.max(1, elements);
  let changed = 0;
  for (let i = 0; i < elements; i++) {
    for (let k = 0; k < w; k++) {
      if (a[i * w + k] !== b[i * w + k]) {
        changed++;
        break;
      }
    }
  }
  return { relL2: null, fractionChanged: elements === 0 ? 0 : changed / elements };
}

/** Diff version `mb` against `ma`. Hold a reader lease on both around it. */
export async function diffVersions(reg: Registry, ma: VersionManifest, mb: VersionManifest): Promise<VersionDiff> {
  const byName = (m: VersionManifest): Map<string, TensorLocation> => new Map(tensorsOf(m).map((l) => [l.tensor.name, l]));
  const A = byName(ma);
  const B = byName(mb);
  const out: TensorDiff[] = [];
  for (const [name, lb] of B) {
    const tb = lb.tensor;
    const la = A.get(name);
    const base = { name, dtype: tb.dtype, shape: tb.shape, elements: count(tb.shape) };
    if (!la) {
      out.push({ ...base, status: 'added', relL2: null, fractionChanged: null });
      continue;
    }
    const ta = la.tensor;
    if (ta.shape.length !== tb.shape.length || ta.shape.some((d, i) => d !== tb.shape[i])) {
      out.push({ ...base, status: 'reshaped', relL2: null, fractionChanged: null });
      continue;
    }
    if (ta.sha256 === tb.sha256 && ta.dtype === tb.dtype) {
      out.push({ ...base, status: 'same', relL2: 0, fractionChanged: 0 });
      continue;
    }
    const [ba, bb] = await Promise.all([readTensorBytes(reg, la), readTensorBytes(reg, lb)]);
    const c = compareTensors(ta.dtype, ba, tb.dtype, bb, base.elements);
    out.push({ ...base, status: c.fractionChanged === 0 && ta.dtype === tb.dtype ? 'same' : 'changed', ...c });
  }
  for (const [name, la] of A) if (!B.has(name)) out.push({ name, dtype: la.tensor.dtype, shape: la.tensor.shape, elements: count(la.tensor.shape), status: 'removed', relL2: null, fractionChanged: null });
  const summary = { tensors: out.length, changed: 0, same: 0, added: 0, removed: 0, reshaped: 0, elementsChanged: 0, elements: 0 };
  for (const d of out) {
    summary[d.status]++;
    if (d.fractionChanged !== null) {
      summary.elementsChanged += Math.round(d.fractionChanged * d.elements);
      summary.elements += d.elements;
    }
  }
  return { a: ma.name, b: mb.name, tensors: out, summary };
}
