/**
 * The trainer's job journal: one JSON file per job (`<museum>/records/jobs/<job id>.json`), rewritten
 * atomically on every change of state (not on every step: progress is live-only), so that a
 * restarted trainer still answers WatchJob and CancelJob for jobs it ran before, and says what became
 * of the jobs a crash or stop interrupted.
 *
 * The images of a job are not journalled (they can be megabytes and the client still has them), so
 * an interrupted job is not re-run: it is settled on recovery, as SUCCEEDED when its style reached
 * the museum (the crash came between the commit and the journal write) and as FAILED otherwise.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { museum } from '@museum/proto';
import { RECORDS_DIR, replaceFileAtomic } from '@museum/museum';
import { isFinal, type JobStatus } from './jobs';

export interface JournalRecord {
  status: JobStatus;
  /** ISO time the job was submitted (orders the journal). */
  submittedAt: string;
  updatedAt: string;
}

/** The journal folder of a museum. */
export function jobJournalDir(museumDir: string): string {
  return path.join(museumDir, RECORDS_DIR, 'jobs');
}

const JOB_FILE = /^(job-[0-9a-f-]{36})\.json$/;

export class JobJournal {
  private readonly submittedAt = new Map<string, string>();

  constructor(readonly dir: string) {}

  /** Write (or rewrite) a job's record. */
  record(status: JobStatus): void {
    if (!this.submittedAt.has(status.jobId)) this.submittedAt.set(status.jobId, new Date().toISOString());
    const rec = { status: museum.v1.JobStatus.toJSON(status), submittedAt: this.submittedAt.get(status.jobId), updatedAt: new Date().toISOString() };
    fs.mkdirSync(this.dir, { recursive: true });
    replaceFileAtomic(path.join(this.dir, `${status.jobId}.json`), JSON.stringify(rec, null, 2) + '\n');
  }

  forget(jobId: string): void {
    this.submittedAt.delete(jobId);
    fs.rmSync(path.join(this.dir, `${jobId}.json`), { force: true });
  }

  /**
   * Every journalled job, oldest first. Jobs that were queued or running when the journal was last
   * written are settled by `settle` (and the settled record written back). Unreadable records are
   * skipped and reported through `onSkip`, never fatal: the journal is a convenience, the museum is
   * the truth.
   */
  recover(settle: (status: JobStatus) => Partial<JobStatus>, onSkip: (file: string, why: string) => void = () => {}): JournalRecord[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: JournalRecord[] = [];
    for (const name of names) {
      const m = JOB_FILE.exec(name);
      if (!m) continue;
      try {
        const raw = JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8'));
        const status = museum.v1.JobStatus.fromJSON(raw.status);
        if (status.jobId !== m[1]) throw new Error(`holds job ${JSON.stringify(status.jobId)}`);
        const submittedAt = typeof raw.submittedAt === 'string' ? raw.submittedAt : new Date(0).toISOString();
        this.submittedAt.set(status.jobId, submittedAt);
        if (!isFinal(status)) {
          Object.assign(status, settle(status));
          this.record(status);
        }
        out.push({ status, submittedAt, updatedAt: typeof raw.updatedAt === 'string' ? raw.updatedAt : submittedAt });
      } catch (err) {
        onSkip(name, err instanceof Error ? err.message : String(err));
      }
    }
    return out.sort((a, b) => a.submittedAt.localeCompare(b.submittedAt));
  }
}
