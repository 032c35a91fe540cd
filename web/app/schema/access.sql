-- Who sees what, and who may write what (docs/sync.md, "Who sees what").
--
-- Every row belongs to one project's bucket; a person's devices hold the buckets of the
-- projects they own or are a member of, and may write into those. A new project is
-- allowed because, once written, its owner is the writer. Members may add members.

BUCKET projects AS 'project:' || id;
BUCKET members AS 'project:' || project_id;
BUCKET tasks AS 'project:' || project_id;
BUCKET tags AS 'project:' || project_id;
BUCKET task_tags AS 'project:' || project_id;
BUCKET comments AS 'project:' || project_id;

WRITE SELECT 'project:' || id FROM projects WHERE owner = :user;
WRITE SELECT 'project:' || project_id FROM members WHERE user_id = :user;
