// Placeholder until the harness lands: integration tests get their engine from here.
export default function setup(): void {}
