#!/usr/bin/env node
// Removes every harness instance, registry and namespace whose owning process is gone
// (a crashed test run, a killed harness-up). Live runs are left alone.
import { runHarnessCli } from "./harness-cli.mjs";

await runHarnessCli(["cleanup"]);
