// Errors that map to one HTTP status and a JSON body {"error": code, "message": ...}. Anything else is a 500.

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequest extends HttpError {
  constructor(code: string, message: string) {
    super(400, code, message);
  }
}
export class Unauthorized extends HttpError {
  constructor(message: string) {
    super(401, "unauthorized", message);
  }
}
export class Forbidden extends HttpError {
  constructor(code: string, message: string) {
    super(403, code, message);
  }
}
export class NotFound extends HttpError {
  constructor(code: string, message: string) {
    super(404, code, message);
  }
}
export class Conflict extends HttpError {
  constructor(code: string, message: string) {
    super(409, code, message);
  }
}
export class PayloadTooLarge extends HttpError {
  constructor(message: string) {
    super(413, "payload_too_large", message);
  }
}
