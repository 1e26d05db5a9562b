/**
 * The daemon's event stream (`docker events`): every lifecycle transition is published here,
 * kept in a bounded ring for `since`, and fanned out to live subscribers.
 */
import { EventEmitter } from 'node:events';
import { InvalidParameterError } from '../errors.js';

export type EventType = 'container' | 'image' | 'volume' | 'network' | 'daemon';

export interface DockerEvent {
  status?: string;
  id?: string;
  from?: string;
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
}

/** `filters` as Docker passes them: key -> accepted values. */
export type EventFilters = Record<string, string[]>;

const RING_SIZE = 1024;

export class EventBus {
  private readonly ring: DockerEvent[] = [];
  private readonly emitter = new EventEmitter();
  private lastNano = 0n;

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(type: EventType, action: string, id: string, attributes: Record<string, string> = {}): DockerEvent {
    // Strictly increasing timestamps so `since`/`until` cut the stream exactly. Steps of a
    // microsecond: timeNano travels as a JSON number, exact only to 256 ns at today's epoch.
    let nano = BigInt(Date.now()) * 1_000_000n;
    if (nano <= this.lastNano) nano = this.lastNano + 1000n;
    this.lastNano = nano;
    const ev: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nano / 1_000_000_000n),
      timeNano: Number(nano),
    };
    if (type === 'container') {
      // The pre-1.22 fields docker CLI still prints for containers.
      ev.status = action;
      ev.id = id;
      if (attributes.image !== undefined) ev.from = attributes.image;
    }
    this.ring.push(ev);
    if (this.ring.length > RING_SIZE) this.ring.shift();
    this.emitter.emit('event', ev);
    return ev;
  }

  /** Past events within [sinceNano, untilNano]. */
  history(sinceNano: bigint | undefined, untilNano: bigint | undefined): DockerEvent[] {
    return this.ring.filter((e) => {
      const t = BigInt(e.timeNano);
      return (sinceNano === undefined || t >= sinceNano) && (untilNano === undefined || t <= untilNano);
    });
  }

  subscribe(fn: (ev: DockerEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
}

/** Docker's event filter semantics: OR within a key, AND across keys. */
export function matchEvent(ev: DockerEvent, filters: EventFilters): boolean {
  for (const [key, values] of Object.entries(filters)) {
    if (values.length === 0) continue;
    const ok = values.some((v) => {
      switch (key) {
        case 'type':
          return ev.Type === v;
        case 'event':
          return ev.Action === v || ev.Action.split(':')[0] === v;
        case 'container':
          return ev.Type === 'container' && (ev.Actor.ID === v || ev.Actor.ID.startsWith(v) || ev.Actor.Attributes.name === v);
        case 'image':
          return ev.Actor.Attributes.image === v || (ev.Type === 'image' && (ev.Actor.ID === v || ev.Actor.Attributes.name === v));
        case 'volume':
          return ev.Type === 'volume' && ev.Actor.ID === v;
        case 'label': {
          const eq = v.indexOf('=');
          if (eq < 0) return v in ev.Actor.Attributes;
          return ev.Actor.Attributes[v.slice(0, eq)] === v.slice(eq + 1);
        }
        case 'scope':
          return v === 'local';
        default:
          return false;
      }
    });
    if (!ok) return false;
  }
  return true;
}

/**
 * Docker's time arguments: RFC 3339 dates, or Unix seconds with optional fraction
 * ("1700000000.123456789"), or durations relative to now ("10m").
 */
export function parseTimeArg(s: string, now = Date.now()): bigint {
  if (/^\d+(\.\d{1,9})?$/.test(s)) {
    const [sec, frac = ''] = s.split('.');
    return BigInt(sec!) * 1_000_000_000n + BigInt(frac.padEnd(9, '0'));
  }
  const dur = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(s);
  if (dur) {
    const mult: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
    return BigInt(Math.round(now - Number(dur[1]) * mult[dur[2]!]!)) * 1_000_000n;
  }
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new InvalidParameterError(`invalid time value: ${s}`);
  return BigInt(t) * 1_000_000n;
}
