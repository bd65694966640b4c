/**
 * Domain errors. The HTTP layer maps each class to one status code, so services throw these and never
 * think about HTTP. A 5xx is anything else.
 */
export class DomainError extends Error {
  readonly statusCode: number = 500;
  override name = 'DomainError';
}

export class NotFoundError extends DomainError {
  override readonly statusCode = 404;
  override name = 'NotFoundError';
}

export class BadRequestError extends DomainError {
  override readonly statusCode = 400;
  override name = 'BadRequestError';
}

export class ConflictError extends DomainError {
  override readonly statusCode = 409;
  override name = 'ConflictError';
}

export class UnprocessableError extends DomainError {
  override readonly statusCode = 422;
  override name = 'UnprocessableError';
}

export class UnavailableError extends DomainError {
  override readonly statusCode = 503;
  override name = 'UnavailableError';
}
