// Helpers for tests and demos: a real PostgreSQL (DATABASE_URL or embedded).
export {
  createDatabase,
  dropDatabase,
  dropSchema,
  startDatabase,
  type TestDatabase,
  withDatabase,
} from "@weft/engine/testing";
