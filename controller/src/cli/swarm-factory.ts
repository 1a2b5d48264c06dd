// How the CLI reaches the swarm: DOCKER_HOST, like the docker CLI. One module so that every verb
// (the store verbs, `status` reading the store's heads) goes through the same test seam.
import { createDockerClient, resolveDockerConnection } from "../swarm/connection.js";
import { DockerodeSwarmApi } from "../swarm/dockerode.js";
import type { SwarmApi } from "../swarm/api.js";

let factory: () => SwarmApi = () => new DockerodeSwarmApi(createDockerClient(resolveDockerConnection(process.env["DOCKER_HOST"], process.env)));

/** Test seam: tests hand in a fake swarm instead of DOCKER_HOST. */
export function setSwarmFactory(next: () => SwarmApi): void {
  factory = next;
}

export function openSwarm(): SwarmApi {
  return factory();
}
