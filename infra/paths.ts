import { fileURLToPath } from 'node:url';

/** The repository root: the Docker build context, and where the Lambda and Spark sources are found. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
