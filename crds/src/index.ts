export * from "./duration.js";
export * from "./schema.js";
export * from "./model.js";
