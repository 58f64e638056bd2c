/**
 * Counters for `GET /metrics`, in the Prometheus text exposition format
 * (version 0.0.4). A handful of counters does not need a metrics library:
 * each is a map from its label values to a number.
 */

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

class Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}

  add(n: number, labels: Labels = {}): void {
    const key = JSON.stringify(labels);
    const v = this.values.get(key);
    if (v) v.value += n;
    else this.values.set(key, { labels, value: n });
  }

  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(labels))?.value ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    if (this.values.size === 0 && this.type === 'gauge') lines.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      lines.push(`${this.name}${l.length ? `{${l.join(',')}}` : ''} ${value}`);
    }
    if (this.values.size === 0 && this.type === 'counter') lines.push(`${this.name} 0`);
    return lines.join('\n');
  }
}

export class Metrics {
  readonly requests = new Family('at1_http_requests_total', 'HTTP requests answered, by method, route and status.', 'counter');
  readonly bytesServed = new Family('at1_http_bytes_served_total', 'Body bytes of tensors and files sent (verified before they were sent), by kind.', 'counter');
  readonly verifyFailures = new Family('at1_verify_failures_total', 'Reads that failed a SHA-256 check (a damaged or missing object).', 'counter');
  readonly decodeSeconds = new Family('at1_decode_seconds_total', 'Seconds spent reading and decoding chunks (summed over concurrent reads).', 'counter');
  readonly decodedChunks = new Family('at1_decoded_chunks_total', 'Chunk reads served to responses.', 'counter');
  readonly decodesInFlight = new Family('at1_decodes_in_flight', 'Responses holding a decode slot now.', 'gauge');
  readonly decodeRejected = new Family('at1_decode_slot_timeouts_total', 'Requests refused with 503 after waiting for a decode slot.', 'counter');

  render(): string {
    return [this.requests, this.bytesServed, this.verifyFailures, this.decodeSeconds, this.decodedChunks, this.decodesInFlight, this.decodeRejected].map((f) => f.render()).join('\n') + '\n';
  }
}
