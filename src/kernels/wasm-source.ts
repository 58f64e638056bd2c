/**
 * The WebAssembly text of the compiled matmul kernels, generated from templates here so that the
 * unrolled variants (dtype × rows × positions) are written once. `build-wasm.ts` assembles it
 * with wabt into `matmul.wasm` (committed); a test checks that rebuilding gives the same bytes.
 *
 * Arithmetic (reference.ts): every output is the 4-lane float64 dot. Lanes (0,1) live in one
 * f64x2 accumulator and lanes (2,3) in another, so for i in steps of 4 the adds happen in exactly
 * the reference's order; the n mod 4 tail is added to lane 0 in increasing i; the result is
 * (s0 + s1) + (s2 + s3), demoted to float32 (round to nearest even, as a Float32Array store).
 * Products of two float32 are exact in float64, so mul-then-add loses nothing.
 *
 * Memory is imported (shared, so worker threads run the same code on the same bytes). Pointers are
 * byte offsets. Activations x are promoted once to float64 by the caller (`promote`).
 */

export type WasmDType = 'f32' | 'f16' | 'bf16';
const DTYPES: readonly WasmDType[] = ['f32', 'f16', 'bf16'];

/** bytes per stored weight element */
function es(d: WasmDType): number {
  return d === 'f32' ? 4 : 2;
}

/**
 * WAT that leaves an f32x4 (as v128) of 4 weights loaded from byte address `addr` (an expression).
 * BF16: the 16 bits are the top half of a float32. F16: exact conversion by bit moves and one
 * multiplication by 2^112 (exact for normals and subnormals), Inf and NaN selected: NaN gets the
 * bits of the JS table (globals $nanPos/$nanNeg, set at load time from f16ToF32Table()).
 */
function load4(d: WasmDType, addr: string): string {
  if (d === 'f32') return `(v128.load align=4 ${addr})`;
  if (d === 'bf16') return `(i32x4.shl (v128.load16x4_u align=2 ${addr}) (i32.const 16))`;
  return `(call $f16x4 (v128.load16x4_u align=2 ${addr}))`;
}

/** WAT for one stored weight at `addr` as f64 (scalar tail). */
function load1(d: WasmDType, addr: string): string {
  if (d === 'f32') return `(f64.promote_f32 (f32.load ${addr}))`;
  if (d === 'bf16') return `(f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.load16_u ${addr}) (i32.const 16))))`;
  return `(f64.promote_f32 (f32x4.extract_lane 0 (call $f16x4 (i32x4.splat (i32.load16_u ${addr})))))`;
}

const HI = 'i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7';

function f16Helper(): string {
  return `
  ;; 4 binary16 patterns (zero-extended in i32 lanes) -> their exact float32 values (f32x4)
  (func $f16x4 (param $h v128) (result v128)
    (local $sign v128) (local $v v128) (local $special v128) (local $nan v128) (local $spec v128)
    (local.set $sign (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16)))
    (local.set $v (v128.or (local.get $sign)
      (f32x4.mul
        (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13))
        (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000))))
    (local.set $special (i32x4.eq (v128.and (local.get $h) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))
      (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)))
    (local.set $nan (v128.and (local.get $special)
      (i32x4.ne (v128.and (local.get $h) (v128.const i32x4 0x3ff 0x3ff 0x3ff 0x3ff)) (v128.const i32x4 0 0 0 0))))
    ;; Inf with its sign, or the table's NaN for that sign
    (local.set $spec (v128.bitselect
      (v128.bitselect (i32x4.splat (global.get $nanNeg)) (i32x4.splat (global.get $nanPos)) (i32x4.ne (local.get $sign) (v128.const i32x4 0 0 0 0)))
      (v128.or (local.get $sign) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
      (local.get $nan)))
    (v128.bitselect (local.get $spec) (local.get $v) (local.get $special)))`;
}

/** dst[0..n) (float64) = promoted src[0..n) (float32) */
function promoteFn(): string {
  return `
  (func (export "promote") (param $src i32) (param $dst i32) (param $n i32)
    (local $v v128)
    (block $b (loop $l
      (br_if $b (i32.lt_s (local.get $n) (i32.const 4)))
      (local.set $v (v128.load align=4 (local.get $src)))
      (v128.store align=8 (local.get $dst) (f64x2.promote_low_f32x4 (local.get $v)))
      (v128.store offset=16 align=8 (local.get $dst) (f64x2.promote_low_f32x4 (${HI} (local.get $v) (local.get $v))))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (local.set $n (i32.sub (local.get $n) (i32.const 4)))
      (br $l)))
    (block $b (loop $l
      (br_if $b (i32.eqz (local.get $n)))
      (f64.store (local.get $dst) (f64.promote_f32 (f32.load (local.get $src))))
      (local.set $src (i32.add (local.get $src) (i32.const 4)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))`;
}

/** decode_D(src, dst, n): n stored weights -> float64 at dst (used by mm_D, exported for tests as float32 via decode32_D). */
function decodeFns(d: WasmDType): string {
  const e = es(d);
  return `
  (func $decode_${d} (param $src i32) (param $dst i32) (param $n i32)
    (local $v v128)
    (block $b (loop $l
      (br_if $b (i32.lt_s (local.get $n) (i32.const 4)))
      (local.set $v ${load4(d, '(local.get $src)')})
      (v128.store align=8 (local.get $dst) (f64x2.promote_low_f32x4 (local.get $v)))
      (v128.store offset=16 align=8 (local.get $dst) (f64x2.promote_low_f32x4 (${HI} (local.get $v) (local.get $v))))
      (local.set $src (i32.add (local.get $src) (i32.const ${4 * e})))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (local.set $n (i32.sub (local.get $n) (i32.const 4)))
      (br $l)))
    (block $b (loop $l
      (br_if $b (i32.eqz (local.get $n)))
      (f64.store (local.get $dst) ${load1(d, '(local.get $src)')})
      (local.set $src (i32.add (local.get $src) (i32.const ${e})))
      (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))
  (func (export "decode32_${d}") (param $src i32) (param $dst i32) (param $n i32)
    (block $b (loop $l
      (br_if $b (i32.lt_s (local.get $n) (i32.const 4)))
      (v128.store align=4 (local.get $dst) ${load4(d, '(local.get $src)')})
      (local.set $src (i32.add (local.get $src) (i32.const ${4 * e})))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (local.set $n (i32.sub (local.get $n) (i32.const 4)))
      (br $l)))
    (block $b (loop $l
      (br_if $b (i32.eqz (local.get $n)))
      (f32.store (local.get $dst) (f32.demote_f64 ${load1(d, '(local.get $src)')}))
      (local.set $src (i32.add (local.get $src) (i32.const ${e})))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** (mul a b) in the reference's operand order: `wFirst` for dot(w, x), else dot(x, w). */
function mul(wFirst: boolean, w: string, x: string, shape: 'f64x2' | 'f64'): string {
  return wFirst ? `(${shape}.mul ${w} ${x})` : `(${shape}.mul ${x} ${w})`;
}

/**
 * Locals and code that finish one dot: lanes from $lo/$hi, the tail (count $e from pointers wq/xq
 * with a scalar weight load), the (s0+s1)+(s2+s3) combine, stored as float32 at `outAddr`.
 */
function finish(lo: string, hi: string, wq: string, wStep: number, wLoad: (a: string) => string, xq: string, wFirst: boolean, outAddr: string): string {
  return `
      (local.set $s0 (f64x2.extract_lane 0 (local.get ${lo})))
      (local.set $e (local.get $tail))
      (local.set $wq ${wq})
      (local.set $xq ${xq})
      (block $tb (loop $tl
        (br_if $tb (i32.eqz (local.get $e)))
        (local.set $s0 (f64.add (local.get $s0) ${mul(wFirst, wLoad('(local.get $wq)'), '(f64.load (local.get $xq))', 'f64')}))
        (local.set $wq (i32.add (local.get $wq) (i32.const ${wStep})))
        (local.set $xq (i32.add (local.get $xq) (i32.const 8)))
        (local.set $e (i32.sub (local.get $e) (i32.const 1)))
        (br $tl)))
      (f32.store ${outAddr} (f32.demote_f64 (f64.add
        (f64.add (local.get $s0) (f64x2.extract_lane 1 (local.get ${lo})))
        (f64.add (f64x2.extract_lane 0 (local.get ${hi})) (f64x2.extract_lane 1 (local.get ${hi}))))))`;
}

const commonLocals = `(local $r i32) (local $t i32) (local $i i32) (local $n4 i32) (local $tail i32) (local $rowBytes i32) (local $xRow i32)
    (local $xp i32) (local $e i32) (local $wq i32) (local $xq i32) (local $s0 f64) (local $wl v128) (local $wh v128) (local $xa v128) (local $xb v128)`;

/**
 * mv_D: weights read in their stored dtype inside the dot, R rows at a time sharing each x load.
 * For every row group and every position t: R dots. (The reference's path for one or two
 * positions; used for small T.)
 */
function mvFn(d: WasmDType, R = 4): string {
  const e = es(d);
  const wFirst = d === 'f32'; // reference: dot(wf, x) for F32, dotBf16/dotF16(x, w) for 16-bit

  const rowGroup = (R: number, label: string): string => {
    const ks = range(R);
    return `
    (block $${label}_done (loop $${label}_rows
      (br_if $${label}_done (i32.gt_s (i32.add (local.get $r) (i32.const ${R})) (local.get $r1)))
      (local.set $t (i32.const 0))
      (loop $${label}_pos
        ${ks.map((k) => `(local.set $a${k}l (v128.const i64x2 0 0)) (local.set $a${k}h (v128.const i64x2 0 0))`).join('\n        ')}
        ${ks.map((k) => `(local.set $p${k} (i32.add (local.get $w) (i32.mul (i32.add (local.get $r) (i32.const ${k})) (local.get $rowBytes))))`).join('\n        ')}
        (local.set $xp (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $xRow))))
        (local.set $i (i32.const 0))
        (block $kb (loop $kl
          (br_if $kb (i32.ge_s (local.get $i) (local.get $n4)))
          (local.set $xa (v128.load align=8 (local.get $xp)))
          (local.set $xb (v128.load offset=16 align=8 (local.get $xp)))
          ${ks
            .map(
              (k) => `(local.set $wl ${load4(d, `(local.get $p${k})`)})
          (local.set $wh (${HI} (local.get $wl) (local.get $wl)))
          (local.set $a${k}l (f64x2.add (local.get $a${k}l) ${mul(wFirst, '(f64x2.promote_low_f32x4 (local.get $wl))', '(local.get $xa)', 'f64x2')}))
          (local.set $a${k}h (f64x2.add (local.get $a${k}h) ${mul(wFirst, '(f64x2.promote_low_f32x4 (local.get $wh))', '(local.get $xb)', 'f64x2')}))
          (local.set $p${k} (i32.add (local.get $p${k}) (i32.const ${4 * e})))`,
            )
            .join('\n          ')}
          (local.set $xp (i32.add (local.get $xp) (i32.const 32)))
          (local.set $i (i32.add (local.get $i) (i32.const 4)))
          (br $kl)))
        ${ks
          .map((k) =>
            finish(`$a${k}l`, `$a${k}h`, `(local.get $p${k})`, e, (a) => load1(d, a), '(local.get $xp)', wFirst,
              `(i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $ostride)) (i32.add (i32.sub (local.get $r) (local.get $r0)) (i32.const ${k}))) (i32.const 2)))`),
          )
          .join('\n')}
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br_if $${label}_pos (i32.lt_s (local.get $t) (local.get $T))))
      (local.set $r (i32.add (local.get $r) (i32.const ${R})))
      (br $${label}_rows)))`;
  };
  return `
  (func (export "mv_${d}") (param $w i32) (param $r0 i32) (param $r1 i32) (param $cols i32) (param $x i32) (param $T i32) (param $out i32) (param $ostride i32)
    ${commonLocals}
    ${range(R).map((k) => `(local $p${k} i32) (local $a${k}l v128) (local $a${k}h v128)`).join(' ')}
    (local.set $n4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $tail (i32.and (local.get $cols) (i32.const 3)))
    (local.set $rowBytes (i32.mul (local.get $cols) (i32.const ${e})))
    (local.set $xRow (i32.shl (local.get $cols) (i32.const 3)))
    (local.set $r (local.get $r0))
    ${rowGroup(R, 'g4')}
    ${rowGroup(1, 'g1')})`;
}

/**
 * mm_D: a block of RB rows decoded once to float64 in the thread's $rowbuf (RB × cols × 8 bytes),
 * then for P positions at a time, every row of the block: P dots sharing each weight load, the x
 * of those positions reused from cache by all RB rows (the reference's path for T > 2: decodeRow,
 * then dot(row, x); blocking changes which dot runs when, never the order inside one).
 */
function mmFn(d: WasmDType, P: number, RB: number): string {
  const e = es(d);
  const wFirst = true;
  const posGroup = (P: number, label: string): string => {
    const ks = range(P);
    return `
      (block $${label}_done (loop $${label}_pos
        (br_if $${label}_done (i32.gt_s (i32.add (local.get $t) (i32.const ${P})) (local.get $T)))
        (local.set $j (i32.const 0))
        (loop $${label}_row
        (local.set $r (i32.add (local.get $rb) (local.get $j)))
        ${ks.map((k) => `(local.set $a${k}l (v128.const i64x2 0 0)) (local.set $a${k}h (v128.const i64x2 0 0))`).join('\n        ')}
        ${ks.map((k) => `(local.set $p${k} (i32.add (local.get $x) (i32.mul (i32.add (local.get $t) (i32.const ${k})) (local.get $xRow))))`).join('\n        ')}
        (local.set $xp (i32.add (local.get $rowbuf) (i32.mul (local.get $j) (local.get $xRow))))
        (local.set $i (i32.const 0))
        (block $kb (loop $kl
          (br_if $kb (i32.ge_s (local.get $i) (local.get $n4)))
          (local.set $wl (v128.load align=8 (local.get $xp)))
          (local.set $wh (v128.load offset=16 align=8 (local.get $xp)))
          ${ks
            .map(
              (k) => `(local.set $a${k}l (f64x2.add (local.get $a${k}l) (f64x2.mul (local.get $wl) (v128.load align=8 (local.get $p${k})))))
          (local.set $a${k}h (f64x2.add (local.get $a${k}h) (f64x2.mul (local.get $wh) (v128.load offset=16 align=8 (local.get $p${k})))))
          (local.set $p${k} (i32.add (local.get $p${k}) (i32.const 32)))`,
            )
            .join('\n          ')}
          (local.set $xp (i32.add (local.get $xp) (i32.const 32)))
          (local.set $i (i32.add (local.get $i) (i32.const 4)))
          (br $kl)))
        ${ks
          .map((k) =>
            finish(`$a${k}l`, `$a${k}h`, '(local.get $xp)', 8, (a) => `(f64.load ${a})`, `(local.get $p${k})`, wFirst,
              `(i32.add (local.get $out) (i32.shl (i32.add (i32.mul (i32.add (local.get $t) (i32.const ${k})) (local.get $ostride)) (i32.sub (local.get $r) (local.get $r0))) (i32.const 2)))`),
          )
          .join('\n')}
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $${label}_row (i32.lt_s (local.get $j) (local.get $nb))))
        (local.set $t (i32.add (local.get $t) (i32.const ${P})))
        (br $${label}_pos)))`;
  };
  return `
  (func (export "mm_${d}") (param $w i32) (param $r0 i32) (param $r1 i32) (param $cols i32) (param $x i32) (param $T i32) (param $out i32) (param $ostride i32) (param $rowbuf i32)
    ${commonLocals} (local $rb i32) (local $nb i32) (local $j i32)
    ${range(P).map((k) => `(local $p${k} i32) (local $a${k}l v128) (local $a${k}h v128)`).join(' ')}
    (local.set $n4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $tail (i32.and (local.get $cols) (i32.const 3)))
    (local.set $rowBytes (i32.mul (local.get $cols) (i32.const ${e})))
    (local.set $xRow (i32.shl (local.get $cols) (i32.const 3)))
    (local.set $rb (local.get $r0))
    (block $bb (loop $bl
      (br_if $bb (i32.ge_s (local.get $rb) (local.get $r1)))
      (local.set $nb (i32.sub (local.get $r1) (local.get $rb)))
      (if (i32.gt_s (local.get $nb) (i32.const ${RB})) (then (local.set $nb (i32.const ${RB}))))
      (local.set $j (i32.const 0))
      (loop $dl
        (call $decode_${d}
          (i32.add (local.get $w) (i32.mul (i32.add (local.get $rb) (local.get $j)) (local.get $rowBytes)))
          (i32.add (local.get $rowbuf) (i32.mul (local.get $j) (local.get $xRow)))
          (local.get $cols))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $dl (i32.lt_s (local.get $j) (local.get $nb))))
      (local.set $t (i32.const 0))
      ${posGroup(P, 'p' + P)}
      ${P > 1 ? posGroup(1, 'p1') : ''}
      (local.set $rb (i32.add (local.get $rb) (local.get $nb)))
      (br $bl))))`;
}

/** The whole module's text. `mmPositions`: positions per register block of mm_D; `rowBlock`: rows decoded per block (the JS side sizes $rowbuf from MM_ROW_BLOCK). */
export const MM_ROW_BLOCK = 8;

export function wasmSource(mmPositions = 4, rowBlock = MM_ROW_BLOCK, mvRows = 4): string {
  return `(module
  (import "env" "memory" (memory 1 65536 shared))
  (global $nanPos (mut i32) (i32.const 0x7fc00000))
  (global $nanNeg (mut i32) (i32.const 0x7fc00000))
  (func (export "set_f16_nan") (param $pos i32) (param $neg i32)
    (global.set $nanPos (local.get $pos))
    (global.set $nanNeg (local.get $neg)))
  ${f16Helper()}
  ${promoteFn()}
  ${DTYPES.map((d) => decodeFns(d)).join('\n')}
  ${DTYPES.map((d) => mvFn(d, mvRows)).join('\n')}
  ${DTYPES.map((d) => mmFn(d, mmPositions, rowBlock)).join('\n')}
)
`;
}
