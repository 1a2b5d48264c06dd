#!/usr/bin/env node
// Starts a private swarm (default 1 node; --nodes N) and a registry for manual experiments; prints
// its sockets and addresses as JSON and keeps it until Ctrl-C, which tears everything down.
//   node scripts/harness-up.mjs --nodes 3
//   docker -H unix:///run/dtrcache-h/<id>/n1.sock node ls
import { runHarnessCli } from "./harness-cli.mjs";

await runHarnessCli(["up", "--registry", ...process.argv.slice(2)]);
