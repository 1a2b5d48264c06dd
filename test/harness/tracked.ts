import { mkdir, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isAlive, processName, processStartTime } from "./proc.js";
import { processRecordsDir } from "./paths.js";

/**
 * A process the harness started and must stop, written to disk so that a later run can stop it
 * when the test process that started it died without cleaning up. The start time guards against
 * pid reuse: a record never leads to signalling someone else's process.
 */
export interface ProcessRecord {
  pid: number;
  start: string;
  name: string;
  ownerPid: number;
  ownerStart: string;
  kind: string;
  /** Directory the process worked in; removed with the process when its owner is gone. */
  dir?: string;
}

export interface Owner {
  pid: number;
  start: string;
}

let selfOwner: Owner | undefined;

export async function currentOwner(): Promise<Owner> {
  selfOwner ??= { pid: process.pid, start: (await processStartTime(process.pid)) ?? "" };
  return selfOwner;
}

/** True when the process described by (pid, start) is still the one that was recorded. */
export async function sameProcess(pid: number, start: string): Promise<boolean> {
  return isAlive(pid) && (await processStartTime(pid)) === start;
}

export async function recordProcess(pid: number, kind: string, dir?: string): Promise<ProcessRecord> {
  const owner = await currentOwner();
  const record: ProcessRecord = {
    pid,
    start: (await processStartTime(pid)) ?? "",
    name: (await processName(pid)) ?? "",
    ownerPid: owner.pid,
    ownerStart: owner.start,
    kind,
    ...(dir === undefined ? {} : { dir }),
  };
  await mkdir(processRecordsDir(), { recursive: true });
  await writeFile(join(processRecordsDir(), `${pid}.json`), JSON.stringify(record));
  return record;
}

export async function forgetProcess(pid: number): Promise<void> {
  await rm(join(processRecordsDir(), `${pid}.json`), { force: true });
  // the directory itself is no leftover once it is empty
  await rmdir(processRecordsDir()).catch(() => undefined);
}

export async function listProcessRecords(): Promise<ProcessRecord[]> {
  let names: string[];
  try {
    names = await readdir(processRecordsDir());
  } catch {
    return [];
  }
  const records: ProcessRecord[] = [];
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    try {
      records.push(JSON.parse(await readFile(join(processRecordsDir(), name), "utf8")) as ProcessRecord);
    } catch {
      // a record cut short by a crash mid-write: nothing can be proven about it, drop it
      await rm(join(processRecordsDir(), name), { force: true });
    }
  }
  return records;
}

/** Stops recorded processes whose owner is dead; returns how many records were cleared. */
export async function reapOrphanedProcesses(): Promise<number> {
  let cleared = 0;
  for (const record of await listProcessRecords()) {
    if (await sameProcess(record.ownerPid, record.ownerStart)) continue;
    if (await sameProcess(record.pid, record.start)) {
      process.kill(record.pid, "SIGKILL");
    }
    if (record.dir) await rm(record.dir, { recursive: true, force: true });
    await forgetProcess(record.pid);
    cleared++;
  }
  return cleared;
}
