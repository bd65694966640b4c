// A schedule: a bare cron string or { cron, timezone }, checked beyond its shape so that a cron
// that would never fire as meant, or a zone that is only an offset, fails at boot.
import { CronExpressionParser } from 'cron-parser';
import { ScheduleSchema, type Schedule } from '../../../contract/source-config.ts';
import { configAjv, reportAjvErrors } from './messages.ts';
import type { Scope } from './scope.ts';
import { errorMessage, isRecord } from './unknown-values.ts';
import type { Path } from './yaml-positions.ts';

const validateSchedule = configAjv.compile<Schedule>(ScheduleSchema);

export function checkSchedule(value: unknown, scope: Scope): Schedule | undefined {
  if (typeof value === 'string') return checkCron({ cron: value }, ['schedule'], scope);
  if (!isRecord(value)) {
    scope.problem(['schedule'], 'must be a cron string or a map with cron and timezone');
    return;
  }
  if (validateSchedule(value)) return checkCron(value, ['schedule', 'cron'], scope);
  reportAjvErrors(validateSchedule.errors, ['schedule'], scope);
}

function checkCron(schedule: Schedule, cronAt: Path, scope: Scope): Schedule | undefined {
  const { cron, timezone } = schedule;
  const zoneOk = timezone === undefined || isTimeZone(timezone);
  if (!zoneOk) {
    scope.problem(
      ['schedule', 'timezone'],
      `must be an IANA time zone such as Europe/Lisbon, not "${timezone}"`,
    );
  }
  // cron-parser fills in missing fields, so "* * *" would pass it; a schedule must spell out 5 (or 6 with seconds).
  const fields = cron.trim().split(/\s+/).length;
  let cronOk = cron.startsWith('@') || fields === 5 || fields === 6;
  if (!cronOk) {
    scope.problem(cronAt, `must have 5 fields (or 6 with seconds), not ${fields}: "${cron}"`);
  } else {
    try {
      CronExpressionParser.parse(cron, zoneOk && timezone !== undefined ? { tz: timezone } : {});
    } catch (error) {
      cronOk = false;
      scope.problem(cronAt, `is not a valid cron expression: "${cron}": ${errorMessage(error)}`);
    }
  }
  return zoneOk && cronOk ? schedule : undefined;
}

function isTimeZone(zone: string): boolean {
  // Intl also takes offsets such as +01:00, which are not zones and ignore daylight saving time.
  if (!/^[A-Za-z]/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
