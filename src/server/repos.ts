/**
 * The repositories a server serves. Given a registry directory, it is one
 * repository, `local/<directory name>` (or the `--repo` given); given a
 * folder of registries, each sub-folder holding `at1-registry.json` is one,
 * `local/<sub-folder name>`. Registries are opened once, lazily, and shared
 * by every request (one chunk cache, one reader lease per registry).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { At1Error, openRegistry, type Registry, type RegistrySettings } from '../index.js';
import { notFound } from './http-errors.js';

const CONFIG = 'at1-registry.json';
const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

export interface RepoEntry {
  id: string;
  dir: string;
}

export class RepoSet {
  private readonly opened = new Map<string, Promise<Registry>>();

  private constructor(
    readonly entries: RepoEntry[],
    private readonly settings: Partial<RegistrySettings>,
  ) {}

  static scan(path: string, repo: string | undefined, settings: Partial<RegistrySettings> = {}): RepoSet {
    const root = resolve(path);
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new At1Error('E_NOT_FOUND', `${path}: no such directory (give a registry, or a folder of registries)`);
    if (repo !== undefined && !REPO_ID.test(repo)) throw new At1Error('E_INPUT', `--repo ${JSON.stringify(repo)} must be ORG/NAME (letters, digits, . _ -)`);
    if (existsSync(join(root, CONFIG))) {
      const id = repo ?? `local/${basename(root)}`;
      if (!REPO_ID.test(id)) throw new At1Error('E_INPUT', `the directory name ${JSON.stringify(basename(root))} cannot be a repository name: give --repo ORG/NAME`);
      return new RepoSet([{ id, dir: root }], settings);
    }
    if (repo !== undefined) throw new At1Error('E_INPUT', `--repo names a single registry, but ${path} is not one (no ${CONFIG})`);
    const entries = readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(root, d.name, CONFIG)) && REPO_ID.test(`local/${d.name}`))
      .map((d) => ({ id: `local/${d.name}`, dir: join(root, d.name) }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    if (entries.length === 0) throw new At1Error('E_NOT_FOUND', `${path} is neither a registry (no ${CONFIG}) nor a folder of registries`);
    return new RepoSet(entries, settings);
  }

  entry(id: string): RepoEntry | undefined {
    return this.entries.find((e) => e.id === id);
  }

  /** The registry of repository `id`; a 404 (RepoNotFound) when there is none. */
  async open(id: string): Promise<Registry> {
    const e = this.entry(id);
    if (!e) throw notFound(`repository ${JSON.stringify(id)} is not served here`, 'RepoNotFound');
    let reg = this.opened.get(id);
    if (!reg) {
      reg = openRegistry(e.dir, { settings: this.settings });
      this.opened.set(id, reg);
      reg.catch(() => this.opened.delete(id));
    }
    return reg;
  }

  /** The repository a /v1 request means: `?repo=`, or the only one served. */
  resolve(query: string | undefined): string {
    if (query !== undefined) return query;
    if (this.entries.length === 1) return this.entries[0]!.id;
    throw new At1Error('E_INPUT', `this server serves ${this.entries.length} repositories: add ?repo=ORG/NAME (one of ${this.entries.map((e) => e.id).join(', ')})`);
  }
}
