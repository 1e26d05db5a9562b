/** Errors of the Dockerfile front end and the builder, in Docker's words and statuses. */
import { InvalidParameterError, TvmError, type ErrorCode } from '../errors.js';

/** 400: the Dockerfile or a build option is wrong (moby answers these with errdefs.InvalidParameter). */
export class BuildError extends InvalidParameterError {
  constructor(message: string, code: ErrorCode = 'ERR_BUILD', options?: { cause?: unknown }) {
    super(message, code, options);
  }
}

/** A parse error tied to a Dockerfile line, worded as moby's parser words it. */
export class DockerfileParseError extends BuildError {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`dockerfile parse error on line ${line}: ${message}`, 'ERR_DOCKERFILE_PARSE');
  }
}

/** A RUN step whose command failed: Docker's wording, code 1 in the CLI's exit. */
export class RunStepError extends TvmError {
  constructor(
    readonly command: string,
    readonly exitCode: number,
  ) {
    super('ERR_BUILD_RUN_FAILED', `The command '${command}' returned a non-zero code: ${exitCode}`, 500);
  }
}
