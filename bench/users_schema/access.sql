-- Who sees what for bench/sync_users.py (docs/sync.md, "Who sees what"): every row is in its
-- project's bucket; a user reads and writes the projects they own or are a member of.

BUCKET projects AS 'project:' || id;
BUCKET members AS 'project:' || project_id;
BUCKET tasks AS 'project:' || project_id;

WRITE SELECT 'project:' || id FROM projects WHERE owner = :user;
WRITE SELECT 'project:' || project_id FROM members WHERE user_id = :user;
