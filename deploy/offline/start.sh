#!/usr/local/bin/node
// The image entrypoint, `/start.sh /config.yml` as in the runbook. It is a node script, not a shell
// script, so that it also works in images without a shell: it runs the bundled service with the
// arguments it was given.
process.argv = [process.argv[0], "/app/main.mjs", ...process.argv.slice(2)];
import("/app/main.mjs").catch((error) => {
  console.error(error);
  process.exit(1);
});
