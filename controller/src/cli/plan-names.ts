// Object names in a dry run that are exactly what the real apply creates (issue 13, item 2).
//
// Config and secret names end in a hash of their content. For a cache that does not exist yet,
// some content is generated when the apply runs — the cache's http.secret in config.yml, a
// self-signed certificate and key — so a dry run that generated its own would print names the
// apply never creates. Instead of guessing, the planner runs twice: a name that comes out the
// same both times is what apply creates (existing material is reused, so names of running
// caches are stable); a name that differs depends on a value generated at apply time and is shown
// as `<cache>-<purpose>-<generated>` with a note, never as a name that will not exist.
import type { Action, Plan } from "../reconcile/planner.js";

export const GENERATED = "<generated>";

function blobNames(plans: readonly Plan[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const plan of plans)
    for (const action of plan.actions) if (action.type === "create-blob") names.set(`${plan.cache}\n${action.blob.purpose}`, action.blob.name);
  return names;
}

/** The first plan with every name that differs in the second replaced by its placeholder. */
export function stableNames(first: readonly Plan[], second: readonly Plan[]): { plans: Plan[]; generated: string[] } {
  const again = blobNames(second);
  const replaced = new Map<string, string>();
  for (const [key, name] of blobNames(first)) {
    if (again.get(key) === name) continue;
    const [cache = "", purpose = ""] = key.split("\n");
    replaced.set(name, `${cache}-${purpose}-${GENERATED}`);
  }
  const swap = (text: string): string => {
    let out = text;
    for (const [from, to] of replaced) out = out.split(from).join(to);
    return out;
  };
  const plans = first.map((plan) => ({
    ...plan,
    actions: plan.actions.map((action): Action => {
      if (action.type === "create-blob") return { ...action, blob: { ...action.blob, name: swap(action.blob.name) } };
      if (action.type === "update-service")
        return { ...action, diffs: action.diffs.map((d) => ({ ...d, ...(d.from !== undefined ? { from: swap(d.from) } : {}), to: swap(d.to) })) };
      return action;
    }),
  }));
  return { plans, generated: [...replaced.values()].sort() };
}

/** Runs `plan` twice and keeps only the names both runs agree on. */
export async function planWithStableNames(plan: () => Promise<Plan[]>): Promise<{ plans: Plan[]; generated: string[] }> {
  const first = await plan();
  const second = await plan();
  return stableNames(first, second);
}

export function generatedNote(generated: readonly string[]): string[] {
  if (generated.length === 0) return [];
  return [
    `note: ${generated.join(", ")}: the name's hash covers material generated when apply runs (the cache's http.secret, a self-signed certificate); the other names are exactly what apply creates`,
  ];
}
